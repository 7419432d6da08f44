import net from 'node:net';
import { Sensors, type DeviceIdentity, type Values } from './device.ts';
import { backoffMs, hostList, hostPort } from './hosts.ts';
import type { Stats } from './stats.ts';

export type TcpFormat = 'hex' | 'text' | 'json';

export interface TcpDeviceConfig {
  /** `tcp://host:port` of the raw TCP listener, or several separated by commas: tried in turn, round-robin. */
  url: string;
  projectKey: string;
  format: TcpFormat;
  /** Milliseconds between frames. */
  intervalMs: number;
  /** Sent every `heartbeatMs` when set. */
  heartbeat?: string;
  heartbeatMs?: number;
}

/** The server closes a refused login without a word: links that keep dying this young mean a bad credential. */
const SHORT_LINK_MS = 3_000;
const SHORT_LINKS_TO_GIVE_UP = 3;

/**
 * The frame of one reading, as a DTU in front of a sensor would send it (device-protocol.md §6):
 * - json: `{"temperature":…,"humidity":…,"switch":…,"location":…}`;
 * - text: `T=21.5;H=40.2;S=1`;
 * - hex: 8 bytes `AA 01 <temp×10 int16> <humidity×10 uint16> <switch> <sum of the bytes before & 0xFF>`.
 */
export function frameOf(format: TcpFormat, v: Values): Buffer {
  if (format === 'json') return Buffer.from(JSON.stringify(v));
  const t = Number(v.temperature);
  const h = Number(v.humidity);
  const sw = v.switch === true ? 1 : 0;
  if (format === 'text') return Buffer.from(`T=${t.toFixed(1)};H=${h.toFixed(1)};S=${sw}`);
  const b = Buffer.alloc(8);
  b[0] = 0xaa;
  b[1] = 0x01;
  b.writeInt16BE(Math.round(t * 10), 2);
  b.writeUInt16BE(Math.round(h * 10), 4);
  b[6] = sw;
  b[7] = b.subarray(0, 7).reduce((sum, x) => (sum + x) & 0xff, 0);
  return b;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * One simulated raw TCP device: logs in with `<project key>&<access token>`, sends a frame at the
 * configured rate, and answers pushes — a JSON object is applied and the new values sent back at
 * once; other bytes are echoed, as a serial loopback would.
 */
export class SimTcpDevice {
  readonly sensors = new Sensors();
  private socket: net.Socket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  /** Round-robin position in a `--host` list, and the server of the last accepted link (another one is a failover). */
  private next = 0;
  private server: string | undefined;
  private shortLinks = 0;
  private openedAt = 0;
  private stopped = false;
  private session = false;
  failed = false;

  constructor(
    readonly identity: DeviceIdentity,
    private readonly config: TcpDeviceConfig,
    private readonly stats: Stats,
  ) {}

  get connected() {
    return this.session && this.socket?.destroyed === false;
  }

  start() {
    const urls = hostList(this.config.url);
    const url = new URL(urls[this.next++ % urls.length]!);
    const server = hostPort(url.href);
    const socket = net.connect(Number(url.port || 28801), url.hostname);
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('connect', () => {
      if (this.server !== undefined && server !== this.server) this.stats.failovers++;
      this.server = server;
      this.onConnect();
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => {
      if (!this.stopped) this.stats.error(`device ${this.identity.index}: ${err.message}`);
    });
    socket.on('close', () => this.onClose());
  }

  private onConnect() {
    this.openedAt = Date.now();
    this.socket!.write(`${this.config.projectKey}&${this.identity.token}\r\n`);
    this.session = true;
    this.stats.connectedDevice(this.identity.index);
    const phase = Math.random() * this.config.intervalMs;
    this.timer = setTimeout(() => {
      this.send(this.sensors.next());
      this.timer = setInterval(() => this.send(this.sensors.next()), this.config.intervalMs);
    }, phase);
    const { heartbeat, heartbeatMs = 30_000 } = this.config;
    if (heartbeat) this.heartbeatTimer = setInterval(() => this.socket?.write(heartbeat), heartbeatMs);
  }

  send(values: Values) {
    if (!this.connected) return;
    this.stats.sent++;
    this.socket!.write(frameOf(this.config.format, values));
  }

  private onData(chunk: Buffer) {
    this.stats.pushes++;
    if (this.config.format === 'json') {
      let body: unknown;
      try {
        body = JSON.parse(chunk.toString('utf8'));
      } catch {
        return this.stats.error('push: not JSON');
      }
      if (!isObject(body)) return this.stats.error('push: not a JSON object');
      // As over MQTT, a device confirms a push by sending the values it now holds.
      return this.send(this.sensors.apply(body));
    }
    if (this.connected) this.socket!.write(chunk);
  }

  private onClose() {
    for (const t of [this.timer, this.heartbeatTimer]) {
      clearTimeout(t);
      clearInterval(t);
    }
    this.timer = this.heartbeatTimer = undefined;
    if (this.session) {
      this.session = false;
      this.stats.connected--;
      this.stats.disconnects++;
      const short = Date.now() - this.openedAt < SHORT_LINK_MS;
      this.shortLinks = short ? this.shortLinks + 1 : 0;
      if (!short) this.attempt = 0;
      if (this.shortLinks >= SHORT_LINKS_TO_GIVE_UP && !this.stopped) {
        this.failed = true;
        this.stats.error(
          `device ${this.identity.index}: the server keeps closing the link right after login (bad token or project key?)`,
        );
        return;
      }
    }
    if (this.stopped || this.failed || this.reconnectTimer) return;
    const delay = backoffMs(this.attempt, hostList(this.config.url).length);
    this.attempt++;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (!this.stopped) this.start();
    }, delay);
  }

  async stop() {
    this.stopped = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const socket = this.socket;
    if (!socket || socket.destroyed) return;
    await new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      socket.end();
      setTimeout(() => socket.destroy(), 1_000).unref();
    });
  }
}
