/** Where the simulator writes: stdout in the CLI, a buffer in tests. */
export interface Output {
  write(text: string): void;
  /** A terminal gets one rewritten status line; anything else a line every few seconds. */
  isTTY: boolean;
}

export interface Summary {
  devices: number;
  provisioned: number;
  /** Certificate requests answered 429 and retried after the server's Retry-After. */
  provision_waits: number;
  /** Devices whose certificate could not be had (refused, or provisioning gave up). */
  not_provisioned: number;
  /** Devices not started because the run was stopped (Ctrl-C, or the duration ended during the ramp-up) first. */
  not_started: number;
  /** Devices asked for (less the ones not started) that never connected: not provisioned, refused, unreachable. */
  short: number;
  /** Devices that had at least one accepted connection. */
  connected_devices: number;
  connected_at_end: number;
  connects: number;
  disconnects: number;
  sent: number;
  /** Reports acknowledged by the broker (QoS 1 PUBACK, sent only once the report is stored), wherever it went. */
  puback: number;
  /** Answered `attributes/response` result 1. */
  acked: number;
  /** Connections accepted by another server of a `--host` list than the device's connection before. */
  failovers: number;
  errors: number;
  commands: number;
  pushes: number;
  gets: number;
  duration_ms: number;
  /** Reports sent per second over the run. */
  rate: number;
  /** Time from publishing a report to its `attributes/response`, ms. */
  latency_p50_ms: number | null;
  latency_p99_ms: number | null;
  last_error: string | null;
}

const LATENCY_SAMPLES = 100_000;
const PLAIN_INTERVAL_MS = 5_000;
const TTY_INTERVAL_MS = 500;

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Counters of the whole run, the live status line and the final summary. */
export class Stats {
  provisioned = 0;
  provisionWaits = 0;
  /** Devices not started because the run was stopped first, and devices left without a certificate (set by the run). */
  notStarted = 0;
  notProvisioned = 0;
  /** While certificates are being fetched the status line counts them instead of connections. */
  provisioning = false;
  connected = 0;
  connects = 0;
  disconnects = 0;
  sent = 0;
  puback = 0;
  acked = 0;
  failovers = 0;
  errors = 0;
  commands = 0;
  pushes = 0;
  gets = 0;
  lastError: string | null = null;
  private readonly everConnected = new Set<number>();
  private readonly latencies: number[] = [];
  private latencySeen = 0;
  private readonly start = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private lastSent = 0;
  private lastTick = Date.now();
  private lineWidth = 0;

  constructor(
    private readonly devices: number,
    private readonly out: Output,
    private readonly quiet: boolean,
  ) {}

  connectedDevice(index: number) {
    this.connected++;
    this.connects++;
    this.everConnected.add(index);
  }

  get connectedDevices() {
    return this.everConnected.size;
  }

  error(message: string) {
    this.errors++;
    this.lastError = message;
  }

  /** Reservoir sampling keeps the percentiles honest on long runs without unbounded memory. */
  latency(ms: number) {
    this.latencySeen++;
    if (this.latencies.length < LATENCY_SAMPLES) this.latencies.push(ms);
    else {
      const slot = Math.floor(Math.random() * this.latencySeen);
      if (slot < LATENCY_SAMPLES) this.latencies[slot] = ms;
    }
  }

  /** A line of its own (a provisioning failure, a wait), printed above the live status line. */
  note(text: string) {
    if (this.out.isTTY && this.lineWidth > 0) {
      this.out.write(`\r${' '.repeat(this.lineWidth)}\r`);
      this.lineWidth = 0;
    }
    this.out.write(`${text}\n`);
  }

  startLive() {
    if (this.quiet) return;
    this.timer = setInterval(() => this.printLive(), this.out.isTTY ? TTY_INTERVAL_MS : PLAIN_INTERVAL_MS);
    this.timer.unref();
  }

  line(): string {
    const now = Date.now();
    const rate = ((this.sent - this.lastSent) * 1000) / Math.max(1, now - this.lastTick);
    this.lastSent = this.sent;
    this.lastTick = now;
    const elapsed = ((now - this.start) / 1000).toFixed(0);
    if (this.provisioning) {
      return `[${elapsed}s] provisioning ${this.provisioned}/${this.devices}  errors ${this.errors}${this.provisionWaits ? `  waited ${this.provisionWaits} times for the server's limit` : ''}`;
    }
    return (
      `[${elapsed}s] connected ${this.connected}/${this.devices}  sent ${this.sent}${this.puback ? `  puback ${this.puback}` : ''}  acked ${this.acked}  errors ${this.errors}  ` +
      `${this.failovers ? `failovers ${this.failovers}  ` : ''}` +
      `cmds ${this.commands}  pushes ${this.pushes}  rate ${rate.toFixed(1)}/s`
    );
  }

  private printLive() {
    const text = this.line();
    if (this.out.isTTY) {
      this.out.write(`\r${text.padEnd(this.lineWidth)}`);
      this.lineWidth = text.length;
    } else this.out.write(`${text}\n`);
  }

  summary(connectedAtEnd: number): Summary {
    const durationMs = Date.now() - this.start;
    const sorted = [...this.latencies].sort((a, b) => a - b);
    return {
      devices: this.devices,
      provisioned: this.provisioned,
      provision_waits: this.provisionWaits,
      not_provisioned: this.notProvisioned,
      not_started: this.notStarted,
      short: Math.max(0, this.devices - this.notStarted - this.everConnected.size),
      connected_devices: this.everConnected.size,
      connected_at_end: connectedAtEnd,
      connects: this.connects,
      disconnects: this.disconnects,
      sent: this.sent,
      puback: this.puback,
      acked: this.acked,
      failovers: this.failovers,
      errors: this.errors,
      commands: this.commands,
      pushes: this.pushes,
      gets: this.gets,
      duration_ms: durationMs,
      rate: Math.round(((this.sent * 1000) / Math.max(1, durationMs)) * 10) / 10,
      latency_p50_ms: percentile(sorted, 50),
      latency_p99_ms: percentile(sorted, 99),
      last_error: this.lastError,
    };
  }

  /** Stops the live line and prints the summary in its place. */
  finish(summary: Summary) {
    if (this.timer) clearInterval(this.timer);
    if (this.out.isTTY && this.lineWidth > 0) this.out.write(`\r${' '.repeat(this.lineWidth)}\r`);
    const ms = (v: number | null) => (v === null ? '-' : `${v.toFixed(1)} ms`);
    this.out.write(
      [
        `simulated ${summary.devices} devices for ${(summary.duration_ms / 1000).toFixed(1)} s`,
        ...(summary.short > 0
          ? [`  SHORT: ${summary.short} of ${summary.devices - summary.not_started} devices never connected`]
          : []),
        ...(summary.not_started > 0 ? [`  not started (stopped first): ${summary.not_started}`] : []),
        `  provisioned ${summary.provisioned}${summary.not_provisioned ? ` (${summary.not_provisioned} not)` : ''}${summary.provision_waits ? ` (waited ${summary.provision_waits} times for the server's limit)` : ''}  connected ${summary.connected_devices} (at end ${summary.connected_at_end})  connects ${summary.connects}  disconnects ${summary.disconnects}${summary.failovers ? `  failovers ${summary.failovers}` : ''}`,
        `  reports sent ${summary.sent}${summary.puback ? `  acknowledged (PUBACK) ${summary.puback}` : ''}  acked ${summary.acked}  errors ${summary.errors}  rate ${summary.rate}/s`,
        `  commands replied ${summary.commands}  pushes applied ${summary.pushes}  attribute gets ${summary.gets}`,
        `  ack latency p50 ${ms(summary.latency_p50_ms)}  p99 ${ms(summary.latency_p99_ms)}`,
        ...(summary.last_error ? [`  last error: ${summary.last_error}`] : []),
        '',
      ].join('\n'),
    );
  }
}
