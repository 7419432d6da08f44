import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { createWebSocketStream, WebSocketServer } from 'ws';
import type { Broker } from './broker.ts';

export const MQTT_WS_PATH = '/mqtt';

/**
 * The client address of an upgrade request: the socket's peer, or behind a reverse proxy
 * (`trustProxy`) the last X-Forwarded-For entry, the one the proxy added (earlier entries are
 * whatever the client wrote, so they cannot decide whose budget a connection uses).
 */
export function clientAddress(req: IncomingMessage, trustProxy: boolean): string | undefined {
  const forwarded = req.headers['x-forwarded-for'];
  const header = Array.isArray(forwarded) ? forwarded[forwarded.length - 1] : forwarded;
  const last = trustProxy ? header?.split(',').pop()?.trim() : undefined;
  return last || req.socket.remoteAddress;
}

/**
 * MQTT over WebSocket on the HTTP port (device-protocol.md §2): upgrades of `/mqtt` become MQTT
 * connections; other upgrade requests are left to other listeners or refused. Returns close().
 */
export function attachWebSocket(
  httpServer: Server,
  broker: Broker,
  options: { maxPayload?: number; trustProxy?: boolean } = {},
): () => Promise<void> {
  const wss = new WebSocketServer({
    noServer: true,
    // Browsers and SDKs ask for "mqtt"; accept it, and plain WebSocket clients too.
    handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false),
    ...(options.maxPayload ? { maxPayload: options.maxPayload } : {}),
  });

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== MQTT_WS_PATH) {
      if (httpServer.listenerCount('upgrade') === 1) socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const stream = createWebSocketStream(ws);
      broker.handleConnection(stream, clientAddress(req, options.trustProxy ?? false));
    });
  };
  httpServer.on('upgrade', onUpgrade);

  return () =>
    new Promise<void>((resolve) => {
      httpServer.off('upgrade', onUpgrade);
      for (const client of wss.clients) client.terminate();
      wss.close(() => resolve());
    });
}
