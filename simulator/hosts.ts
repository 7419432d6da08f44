import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { ResendStore } from './resend-store.ts';

/**
 * `--host` may name several servers, `mqtt://a:1883,mqtt://b:1883` (the nodes of a cluster, docs/cluster.md §6):
 * a device connects to the first that answers and, when its connection is lost, moves on to the next, round-robin.
 */
export const MAX_HOSTS = 16;

/** The urls of a `--host` value, in order; empty entries (a trailing comma) are dropped. */
export function hostList(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** Why a list of urls cannot be one failover set, or undefined when it can. */
export function hostListProblem(urls: string[]): string | undefined {
  if (urls.length === 0) return 'no url given';
  if (urls.length > MAX_HOSTS) return `at most ${MAX_HOSTS} urls`;
  const parsed = urls.map((u) => new URL(u));
  const first = parsed[0]!;
  // mqtt.js takes one scheme family and one WebSocket path for the whole list (its `servers` option).
  if (parsed.some((u) => u.protocol !== first.protocol)) return 'all urls of a list use the same scheme';
  if (parsed.some((u) => u.pathname !== first.pathname)) return 'all urls of a list use the same path';
  return undefined;
}

const DEFAULT_PORTS: Record<string, number> = { 'mqtt:': 1883, 'mqtts:': 8883, 'ws:': 80, 'wss:': 443, 'tcp:': 28801 };

/** `host:port` of a url, as the status lines name a server. */
export function hostPort(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || DEFAULT_PORTS[u.protocol] || ''}`;
}

/**
 * One MQTT client for a list of servers. mqtt.js picks the next entry of `servers` each time it opens a stream, so
 * `reconnect` moves round-robin through the list while the client, and with it the outgoing store of QoS 1
 * publishes not yet acknowledged, stays the same.
 */
export function connectMqtt(urls: string[], given: IClientOptions): MqttClient {
  // Resent reports carry DUP, so the server stores each exactly once across a lost connection (resend-store.ts).
  const options: IClientOptions = { outgoingStore: new ResendStore(), ...given };
  if (urls.length === 1) return mqtt.connect(urls[0]!, options);
  const servers = urls.map((u) => {
    const url = new URL(u);
    return {
      host: url.hostname,
      port: Number(url.port || DEFAULT_PORTS[url.protocol]),
      protocol: url.protocol.replace(':', '') as 'mqtt' | 'mqtts' | 'ws' | 'wss',
    };
  });
  return mqtt.connect(urls[0]!, { ...options, servers });
}

/** The server the client's current (or last) stream went to, `host:port`. */
export function currentServer(client: MqttClient): string {
  const { host, hostname, port } = client.options;
  return `${hostname ?? host}:${port}`;
}

/**
 * Opens a new stream (to the next server of the list) with the same stores. mqtt.js's `reconnect()` without
 * stores starts empty ones, which would drop every QoS 1 report sent but not acknowledged; with the old outgoing
 * store they are sent again once the new connection is accepted (device-protocol.md §4: acknowledged only once
 * stored, and a resend carries DUP so the server does not store it twice: §3.3).
 */
export function reconnectKeepingStores(client: MqttClient) {
  client.reconnect({ incomingStore: client.incomingStore, outgoingStore: client.outgoingStore });
}

/**
 * Exponential back-off with jitter (0.5 s … 30 s) that grows once per round through the list: after losing a
 * server, the others are tried at once before the device waits longer.
 */
export function backoffMs(failures: number, hosts: number, baseMs = 500, maxMs = 30_000): number {
  const rounds = Math.floor(failures / Math.max(1, hosts));
  const delay = Math.min(maxMs, baseMs * 2 ** rounds);
  return delay * (0.5 + Math.random() / 2);
}
