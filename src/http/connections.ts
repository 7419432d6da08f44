import type { Server } from 'node:http';
import { addressKey } from '../lib/address.ts';

export interface HttpConnectionLimits {
  /** Open HTTP sockets per client address (IPv6: per /64); more are closed at once. 0 = no limit. */
  perAddress: number;
  /** Behind a proxy every socket comes from the proxy: the per-address limit does not apply. */
  trustProxy: boolean;
  /** The complete request headers must arrive within this (a socket that sends nothing is closed). */
  headersTimeoutMs: number;
}

/**
 * Bounds what idle or slow HTTP sockets can hold (README "Security and limits"): one address cannot
 * open more than `perAddress` sockets (so a flood of silent sockets from one address cannot use up the
 * server's file descriptors and lock every tenant out of the API and of MQTT over WebSocket), and a
 * socket must send its request headers within `headersTimeoutMs`. Node's server has no per-address
 * limit of its own, hence this small guard. Returns a function that reads the open count of an address.
 */
export function limitHttpConnections(server: Server, limits: HttpConnectionLimits): (remoteAddress: string) => number {
  const open = new Map<string, number>();
  // Node checks it on its connection sweep (every 30 s): a silent socket lives at most that much longer.
  server.headersTimeout = limits.headersTimeoutMs;
  if (limits.perAddress > 0 && !limits.trustProxy) {
    server.on('connection', (socket) => {
      const key = addressKey(socket.remoteAddress);
      const n = open.get(key) ?? 0;
      if (n >= limits.perAddress) {
        socket.destroy();
        return;
      }
      open.set(key, n + 1);
      socket.once('close', () => {
        const left = (open.get(key) ?? 1) - 1;
        if (left > 0) open.set(key, left);
        else open.delete(key);
      });
    });
  }
  return (remoteAddress) => open.get(addressKey(remoteAddress)) ?? 0;
}
