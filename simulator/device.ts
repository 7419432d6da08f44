import type { IClientOptions, MqttClient } from 'mqtt';
import { TOPICS } from '../mqtt-broker/protocol/topics.ts';
import { backoffMs, connectMqtt, currentServer, hostList, reconnectKeepingStores } from './hosts.ts';
import type { Stats } from './stats.ts';

export type Values = Record<string, unknown>;

/** What a device needs to connect: its index in the run and its access token. */
export interface DeviceIdentity {
  index: number;
  token: string;
}

export interface DeviceConfig {
  /** The broker url, or several separated by commas: tried in turn, round-robin (hosts.ts). */
  url: string;
  projectKey: string;
  qos: 0 | 1;
  mqttVersion: 4 | 5;
  /** Milliseconds between reports. */
  intervalMs: number;
}

/** How long a stop waits for QoS 1 reports still unacknowledged before it closes the connection anyway. */
export const DRAIN_MS = 5_000;
/** device-protocol.md §2: refused credentials; retrying will not help. */
const AUTH_REFUSED = new Set([4, 5, 0x86, 0x87]);
/** The SDKs' default request id is 1000; each get of one connection takes the next. */
const FIRST_GET_ID = 1000;
const SUBSCRIPTIONS = [
  TOPICS.attributesResponse,
  TOPICS.attributesPush,
  TOPICS.attributesGetResponse('+'),
  TOPICS.commandSend('+'),
];

const round = (v: number, digits: number) => Math.round(v * 10 ** digits) / 10 ** digits;
const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

/**
 * The sensor state of one device: a temperature random walk in 18–30 °C, humidity in 30–70 %
 * drifting against the temperature, a switch that flips now and then, and a location jittering
 * around a fixed base.
 */
export class Sensors {
  temperature: number;
  humidity: number;
  switch: boolean;
  private readonly base: { lat: number; lng: number };
  location: { lat: number; lng: number };
  /** Once the cloud has set the switch it stays as set: it no longer flips on its own. */
  private switchControlled = false;
  /** Values pushed or read from the cloud for keys the simulator does not model: reported back as is. */
  readonly extra: Values = {};

  constructor(random: () => number = Math.random) {
    this.temperature = 18 + random() * 12;
    this.humidity = 30 + random() * 40;
    this.switch = random() < 0.5;
    // Around Shanghai, spread over a few kilometres per device.
    this.base = { lat: 31.23 + (random() - 0.5) * 0.2, lng: 121.47 + (random() - 0.5) * 0.2 };
    this.location = { ...this.base };
  }

  /** One step of the random walk; answers the values to report. */
  next(random: () => number = Math.random): Values {
    this.temperature = clamp(this.temperature + (random() - 0.5) * 0.6, 18, 30);
    this.humidity = clamp(this.humidity + (random() - 0.5) * 2 - (this.temperature - 24) * 0.05, 30, 70);
    if (!this.switchControlled && random() < 0.02) this.switch = !this.switch;
    this.location = {
      lat: round(this.base.lat + (random() - 0.5) * 0.001, 6),
      lng: round(this.base.lng + (random() - 0.5) * 0.001, 6),
    };
    return this.values();
  }

  values(): Values {
    return {
      temperature: round(this.temperature, 1),
      humidity: round(this.humidity, 1),
      switch: this.switch,
      location: this.location,
      ...this.extra,
    };
  }

  /** Applies pushed or cloud values; answers what the device now holds for those keys. */
  apply(values: Values): Values {
    const applied: Values = {};
    for (const [key, value] of Object.entries(values)) {
      if (key === 'temperature' && typeof value === 'number') this.temperature = value;
      else if (key === 'humidity' && typeof value === 'number') this.humidity = value;
      else if (key === 'switch' && typeof value === 'boolean') {
        this.switch = value;
        this.switchControlled = true;
      } else if (key === 'location' && isLocation(value)) this.location = { lat: value.lat, lng: value.lng };
      else this.extra[key] = value;
      applied[key] = value;
    }
    return applied;
  }
}

function isLocation(v: unknown): v is { lat: number; lng: number } {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as { lat?: unknown }).lat === 'number' &&
    typeof (v as { lng?: unknown }).lng === 'number'
  );
}

function parse(payload: Buffer): unknown {
  try {
    return JSON.parse(payload.toString());
  } catch {
    return undefined;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** One simulated device: its MQTT session, the report schedule and the answers to downstream messages. */
export class SimDevice {
  readonly sensors = new Sensors();
  private client: MqttClient | undefined;
  private reportTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  /** The server of the last accepted connection: another one on the next connection is a failover. */
  private server: string | undefined;
  private stopped = false;
  private nextGetId = FIRST_GET_ID;
  /** Send times of reports awaiting their `attributes/response`, answered in order on one connection. */
  private pending: number[] = [];
  /** Whether an accepted connection is open: only its close counts as a disconnect. */
  private session = false;
  /**
   * Packet ids of QoS 1 reports sent and not yet acknowledged, whichever host they went to: what a stop waits for.
   * mqtt.js forgets the callback of a message in flight when its connection drops (its `outgoing` is then empty)
   * and sends the message again from its store on the next host.
   */
  private readonly unacknowledged = new Set<number>();
  /** True after a refused CONNECT: the token is wrong, so the device gives up. */
  failed = false;

  constructor(
    readonly identity: DeviceIdentity,
    private readonly config: DeviceConfig,
    private readonly stats: Stats,
  ) {}

  get connected() {
    return this.client?.connected === true;
  }

  start() {
    const options: IClientOptions = {
      username: this.identity.token,
      password: this.config.projectKey,
      clientId: `sim-${this.identity.index}-${Math.random().toString(16).slice(2, 10)}`,
      protocolVersion: this.config.mqttVersion,
      clean: true,
      keepalive: 120,
      connectTimeout: 10_000,
      // Reconnects are ours (exponential back-off with jitter); mqtt.js would retry at a fixed period.
      reconnectPeriod: 0,
      resubscribe: false,
    };
    const client = connectMqtt(hostList(this.config.url), options);
    this.client = client;
    client.on('connect', () => this.onConnect());
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    client.on('error', (err) => this.onError(err as Error & { code?: number | string }));
    client.on('close', () => this.onClose());
    // PUBACKs of reports counted from the packets, not the publish callbacks: mqtt.js fails the callback of a
    // message in flight when the connection drops, then sends it again from its store to the next host,
    // where its PUBACK arrives with no callback left to call.
    const reports = this.unacknowledged;
    client.on('packetsend', (packet) => {
      if (packet.cmd === 'publish' && packet.topic === TOPICS.attributes && packet.messageId !== undefined)
        reports.add(packet.messageId);
    });
    client.on('packetreceive', (packet) => {
      if (packet.cmd === 'puback' && packet.messageId !== undefined && reports.delete(packet.messageId))
        this.stats.puback++;
    });
  }

  private onConnect() {
    this.attempt = 0;
    this.pending = [];
    this.session = true;
    this.stats.connectedDevice(this.identity.index);
    const client = this.client!;
    const server = currentServer(client);
    if (this.server !== undefined && server !== this.server) this.stats.failovers++;
    this.server = server;
    client.subscribe(SUBSCRIPTIONS, { qos: this.config.qos }, (err) => {
      if (err) return this.stats.error(`subscribe: ${err.message}`);
      this.publish(TOPICS.attributesGet(this.nextGetId++), {});
      this.schedule();
    });
  }

  private schedule() {
    if (this.reportTimer) clearInterval(this.reportTimer);
    // A random phase keeps many devices from reporting in lockstep.
    const phase = Math.random() * this.config.intervalMs;
    this.reportTimer = setTimeout(() => {
      this.report(this.sensors.next());
      this.reportTimer = setInterval(() => this.report(this.sensors.next()), this.config.intervalMs);
    }, phase);
  }

  report(values: Values) {
    // Not once stopping: a report counted as sent while the connection drains and ends would never be acknowledged.
    if (!this.connected || this.stopped) return;
    this.stats.sent++;
    this.pending.push(performance.now());
    this.publish(TOPICS.attributes, values);
  }

  /** `acknowledged` runs when a QoS 1 publish got its PUBACK, on this connection or after a failover. */
  private publish(topic: string, body: unknown, acknowledged?: () => void) {
    this.client?.publish(topic, JSON.stringify(body), { qos: this.config.qos }, (err) => {
      if (err) {
        if (!this.stopped) this.stats.error(`publish ${topic}: ${err.message}`);
      } else if (this.config.qos === 1) acknowledged?.();
    });
  }

  private onMessage(topic: string, payload: Buffer) {
    const body = parse(payload);
    if (topic === TOPICS.attributesResponse) {
      const sentAt = this.pending.shift();
      if (sentAt !== undefined) this.stats.latency(performance.now() - sentAt);
      if (isObject(body) && body.result === 1) this.stats.acked++;
      else this.stats.error(`report refused: ${isObject(body) ? String(body.message ?? body.errcode) : 'bad answer'}`);
    } else if (topic === TOPICS.attributesPush) {
      if (!isObject(body)) return this.stats.error('attributes/push: not a JSON object');
      this.stats.pushes++;
      // A real device confirms a push by reporting the values it now holds.
      this.report(this.sensors.apply(body));
    } else if (topic.startsWith('attributes/get/response/')) {
      if (!isObject(body) || body.result !== 1) return this.stats.error('attributes/get refused');
      this.stats.gets++;
      if (isObject(body.attributes)) {
        // Only cloud-side state the device does not measure itself (e.g. the switch) is taken over.
        const { temperature: _t, humidity: _h, location: _l, ...rest } = body.attributes;
        this.sensors.apply(rest);
      }
    } else if (topic.startsWith('command/send/')) {
      this.onCommand(topic.slice('command/send/'.length), body);
    }
  }

  private onCommand(id: string, body: unknown) {
    if (!isObject(body) || typeof body.method !== 'string') return this.stats.error(`command ${id}: bad body`);
    const params = isObject(body.params) ? body.params : {};
    // Commands named after an attribute (or carrying attributes) set it; the reply says what was done.
    const applied = this.sensors.apply(
      Object.fromEntries(Object.entries(params).filter(([k]) => k in this.sensors.values())),
    );
    this.stats.commands++;
    this.publish(TOPICS.commandReply(id), {
      method: body.method,
      params: { result: 'ok', ...applied },
      id: body.id ?? Number(id),
    });
  }

  private onError(err: Error & { code?: number | string }) {
    if (this.stopped) return;
    if (typeof err.code === 'number' && AUTH_REFUSED.has(err.code)) {
      this.failed = true;
      this.stats.error(`device ${this.identity.index}: connection refused (${err.message})`);
      return;
    }
    // Network trouble: counted, and the close that follows schedules the reconnect.
    this.stats.error(`device ${this.identity.index}: ${err.message}`);
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
    if (!client.connected) return void client.end(true);
    await endDrained(client, () => Math.max(inFlight(client), this.unacknowledged.size));
  }
}

const inFlight = (client: MqttClient) => Object.keys(client.outgoing).length;

/**
 * Ends a connected client: first waits (up to DRAIN_MS) for the PUBACKs of QoS 1 messages in flight (`waiting`: by
 * default those mqtt.js still holds a callback for), so a stop does not cut off reports the server is storing; a
 * server that never answers them does not hold the run.
 */
export async function endDrained(client: MqttClient, waiting: () => number = () => inFlight(client)) {
  const deadline = Date.now() + DRAIN_MS;
  while (client.connected && waiting() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await client.endAsync(!client.connected || waiting() > 0).catch(() => undefined);
}
