import type { IClientOptions, MqttClient } from 'mqtt';
import { GATEWAY_TOPICS } from '../mqtt-broker/protocol/topics.ts';
import { endDrained, Sensors, type DeviceConfig, type DeviceIdentity, type Values } from './device.ts';
import { backoffMs, connectMqtt, currentServer, hostList, reconnectKeepingStores } from './hosts.ts';
import type { Stats } from './stats.ts';

export interface GatewayConfig extends DeviceConfig {
  /** Sub-devices carried by each gateway, at addresses "1" … "K". */
  subDevices: number;
}

/** device-protocol.md §2: refused credentials; retrying will not help. */
const AUTH_REFUSED = new Set([4, 5, 0x86, 0x87]);
const SUBSCRIPTIONS = [
  GATEWAY_TOPICS.attributesResponse,
  GATEWAY_TOPICS.attributesGetResponse,
  GATEWAY_TOPICS.attributesPush,
  GATEWAY_TOPICS.commandSend,
  GATEWAY_TOPICS.connectResponse,
];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function parse(payload: Buffer): unknown {
  try {
    return JSON.parse(payload.toString());
  } catch {
    return undefined;
  }
}

/**
 * One simulated gateway (device-protocol.md §8): a single MQTT connection with the gateway's token that
 * says `gateway/connect` for its sub-devices "1" … "K", reports all of them in one `gateway/attributes`
 * message per interval, reads their cloud attributes, applies pushes and answers commands for them.
 * Counters count sub-device reports: one message of K sub-devices is K reports sent (and acked).
 */
export class SimGateway {
  readonly subs = new Map<string, Sensors>();
  private client: MqttClient | undefined;
  private reportTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  /** The server of the last accepted connection: another one on the next connection is a failover. */
  private server: string | undefined;
  private stopped = false;
  /** Send times and sizes of reports awaiting their `gateway/attributes/response`, in order. */
  private pending: Array<{ at: number; reports: number }> = [];
  private session = false;
  failed = false;

  constructor(
    readonly identity: DeviceIdentity,
    private readonly config: GatewayConfig,
    private readonly stats: Stats,
  ) {
    for (let k = 1; k <= config.subDevices; k++) this.subs.set(String(k), new Sensors());
  }

  get connected() {
    return this.client?.connected === true;
  }

  start() {
    const options: IClientOptions = {
      username: this.identity.token,
      password: this.config.projectKey,
      clientId: `simgw-${this.identity.index}-${Math.random().toString(16).slice(2, 10)}`,
      protocolVersion: this.config.mqttVersion,
      clean: true,
      keepalive: 120,
      connectTimeout: 10_000,
      reconnectPeriod: 0,
      resubscribe: false,
    };
    const client = connectMqtt(hostList(this.config.url), options);
    this.client = client;
    client.on('connect', () => this.onConnect());
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    client.on('error', (err) => this.onError(err as Error & { code?: number | string }));
    client.on('close', () => this.onClose());
  }

  private onConnect() {
    this.attempt = 0;
    this.pending = [];
    this.session = true;
    this.stats.connectedDevice(this.identity.index);
    const server = currentServer(this.client!);
    if (this.server !== undefined && server !== this.server) this.stats.failovers++;
    this.server = server;
    this.client!.subscribe(SUBSCRIPTIONS, { qos: this.config.qos }, (err) => {
      if (err) return this.stats.error(`gateway ${this.identity.index}: subscribe: ${err.message}`);
      for (const device of this.subs.keys()) {
        this.publish(GATEWAY_TOPICS.connect, { device });
        this.publish(GATEWAY_TOPICS.attributesGet, { device });
      }
      this.schedule();
    });
  }

  private schedule() {
    const phase = Math.random() * this.config.intervalMs;
    this.reportTimer = setTimeout(() => {
      this.reportAll();
      this.reportTimer = setInterval(() => this.reportAll(), this.config.intervalMs);
    }, phase);
  }

  private reportAll() {
    this.report(Object.fromEntries([...this.subs].map(([address, sensors]) => [address, sensors.next()])));
  }

  /** One `gateway/attributes` message: `{"<addr>":{…},…}`. */
  report(byAddress: Record<string, Values>) {
    // Not once stopping: reports counted as sent while the connection drains and ends would never be acknowledged.
    if (!this.connected || this.stopped) return;
    const reports = Object.keys(byAddress).length;
    this.stats.sent += reports;
    this.pending.push({ at: performance.now(), reports });
    this.publish(GATEWAY_TOPICS.attributes, byAddress, () => (this.stats.puback += reports));
  }

  /** `acknowledged` runs when a QoS 1 publish got its PUBACK, on this connection or after a failover. */
  private publish(topic: string, body: unknown, acknowledged?: () => void) {
    this.client?.publish(topic, JSON.stringify(body), { qos: this.config.qos }, (err) => {
      if (err) {
        if (!this.stopped) this.stats.error(`publish ${topic}: ${err.message}`);
      } else if (this.config.qos === 1) acknowledged?.();
    });
  }

  private refused(what: string, body: unknown) {
    const reason = isObject(body) ? String(body.message ?? body.errcode) : 'bad answer';
    this.stats.error(`gateway ${this.identity.index}: ${what} refused: ${reason}`);
  }

  private onMessage(topic: string, payload: Buffer) {
    const body = parse(payload);
    const device = isObject(body) && typeof body.device === 'string' ? body.device : undefined;
    const sub = device === undefined ? undefined : this.subs.get(device);
    switch (topic) {
      case GATEWAY_TOPICS.attributesResponse: {
        const sent = this.pending.shift();
        if (sent) this.stats.latency(performance.now() - sent.at);
        if (isObject(body) && body.result === 1) this.stats.acked += sent?.reports ?? 0;
        else this.refused('report', body);
        return;
      }
      case GATEWAY_TOPICS.connectResponse:
        if (!isObject(body) || body.result !== 1)
          this.refused(`gateway/connect of ${isObject(body) ? String(body.device) : '?'}`, body);
        return;
      case GATEWAY_TOPICS.attributesGetResponse: {
        if (!sub || !isObject(body) || body.result !== 1) return this.refused('gateway/attributes/get', body);
        this.stats.gets++;
        if (isObject(body.attributes)) {
          // Only cloud-side state the sub-device does not measure itself is taken over.
          const { temperature: _t, humidity: _h, location: _l, ...rest } = body.attributes;
          sub.apply(rest);
        }
        return;
      }
      case GATEWAY_TOPICS.attributesPush: {
        if (!sub || !isObject(body) || !isObject(body.attributes))
          return this.stats.error('gateway/attributes/push: not {"device","attributes"} of a known sub-device');
        this.stats.pushes++;
        // Confirmed by reporting the values the sub-device now holds.
        this.report({ [device!]: sub.apply(body.attributes) });
        return;
      }
      case GATEWAY_TOPICS.commandSend: {
        const command = isObject(body) ? body.command : undefined;
        if (!sub || !isObject(command) || typeof command.method !== 'string')
          return this.stats.error('gateway/command/send: bad body');
        const params = isObject(command.params) ? command.params : {};
        const applied = sub.apply(Object.fromEntries(Object.entries(params).filter(([k]) => k in sub.values())));
        this.stats.commands++;
        this.publish(GATEWAY_TOPICS.commandReply, {
          device,
          command: { id: command.id, method: command.method, params: { result: 'ok', ...applied } },
        });
        return;
      }
    }
  }

  private onError(err: Error & { code?: number | string }) {
    if (this.stopped) return;
    if (typeof err.code === 'number' && AUTH_REFUSED.has(err.code)) {
      this.failed = true;
      this.stats.error(`gateway ${this.identity.index}: connection refused (${err.message})`);
      return;
    }
    this.stats.error(`gateway ${this.identity.index}: ${err.message}`);
  }

  private onClose() {
    if (this.reportTimer) {
      clearTimeout(this.reportTimer);
      clearInterval(this.reportTimer);
      this.reportTimer = undefined;
    }
    if (this.session) {
      this.session = false;
      this.stats.connected--;
      this.stats.disconnects++;
    }
    if (this.stopped || this.failed || this.reconnectTimer) return;
    const delay = backoffMs(this.attempt, hostList(this.config.url).length);
    this.attempt++;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      // The next server of the list, with the QoS 1 reports not yet acknowledged kept for it (hosts.ts).
      if (!this.stopped && this.client) reconnectKeepingStores(this.client);
    }, delay);
  }

  async stop() {
    this.stopped = true;
    if (this.reportTimer) clearInterval(this.reportTimer);
    this.reportTimer = undefined;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const client = this.client;
    if (!client) return;
    if (client.connected) await endDrained(client);
    else client.end(true);
  }
}

interface ApiAnswer {
  result?: boolean;
  errcode?: number;
  message?: string;
  info?: Record<string, unknown> & { items?: Array<{ id: string }> };
}

/**
 * `--api-token`: makes sure every provisioned gateway "<prefix>-<n>" has its sub-devices "<prefix>-<n>-<k>"
 * (created with the sub-device type when missing) attached at addresses "1" … "K", through the project API.
 * Failures are counted as errors; the run goes on (reports for a missing address are refused by the cloud).
 */
export async function attachSubDevices(
  options: { http: string; prefix: string; apiToken: string; subType: string; subDevices: number },
  gateways: number[],
  stats: Stats,
  signal?: AbortSignal,
): Promise<void> {
  const call = async (method: 'GET' | 'POST', path: string, body?: unknown): Promise<ApiAnswer> => {
    const res = await fetch(new URL(path, options.http), {
      method,
      headers: {
        authorization: `Bearer ${options.apiToken}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return (
      ((await res.json().catch(() => undefined)) as ApiAnswer | undefined) ?? {
        result: false,
        message: `HTTP ${res.status}`,
      }
    );
  };
  const idOfKey = async (deviceKey: string) =>
    (await call('GET', `/api/v1/devices?device_key=${encodeURIComponent(deviceKey)}`)).info?.items?.[0]?.id;
  for (const index of gateways) {
    if (signal?.aborted) return;
    try {
      const gatewayId = await idOfKey(`${options.prefix}-${index}`);
      if (!gatewayId) throw new Error(`gateway ${options.prefix}-${index} not found`);
      for (let k = 1; k <= options.subDevices; k++) {
        const key = `${options.prefix}-${index}-${k}`;
        const created = await call('POST', '/api/v1/device', { name: key, type: options.subType, device_key: key });
        const id = created.result
          ? (created.info?.id as string)
          : created.errcode === 409
            ? await idOfKey(key)
            : undefined;
        if (!id) throw new Error(`sub-device ${key}: ${created.message ?? 'not created'}`);
        const attached = await call('POST', `/api/v1/device/${gatewayId}/sub_devices`, {
          device: id,
          address: String(k),
        });
        if (!attached.result) throw new Error(`attaching ${key} at ${k}: ${attached.message ?? 'refused'}`);
      }
    } catch (err) {
      stats.error((err as Error).message);
    }
  }
}
