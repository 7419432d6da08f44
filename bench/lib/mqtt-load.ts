import mqtt, { type MqttClient } from 'mqtt';

export interface Credentials {
  username: string;
  password: string;
}

/** Counters every client of a fleet feeds. */
export interface FleetEvents {
  /** Connections closed after their CONNACK, before the bench closed them. */
  dropped: number;
  /** `attributes/response` messages: `{"result":1}` and anything else. */
  responsesOk: number;
  responsesBad: number;
  /** A few of the bad answers, for the report. */
  badSamples: string[];
}

export interface Fleet {
  clients: MqttClient[];
  events: FleetEvents;
  /** Failed connection attempts by reason. */
  failures: Map<string, number>;
  ms: number;
  /** Per-connection CONNECT → CONNACK times, ms. */
  connectLatency: Float64Array;
}

/** Runs `task(i)` for i in 0..n-1 with at most `concurrency` in flight. */
async function pool(n: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
}

const count = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);

/**
 * Opens one MQTT 3.1.1 connection per credential, at most `concurrency` CONNECTs awaiting their
 * CONNACK at a time. Clients do not reconnect: a connection lost later counts in `events.dropped`.
 */
export async function connectFleet(opts: {
  port: number;
  credentials: Credentials[];
  concurrency: number;
  timeoutMs: number;
  /** Checked before each new connection: true stops the ramp (e.g. on SIGINT). */
  stopping?: () => boolean;
  /** Counters shared with another fleet (when connecting in parts); fresh ones otherwise. */
  events?: FleetEvents;
  /** Client ids are `bench-<firstIndex + i>`. */
  firstIndex?: number;
}): Promise<Fleet> {
  const events: FleetEvents = opts.events ?? { dropped: 0, responsesOk: 0, responsesBad: 0, badSamples: [] };
  const firstIndex = opts.firstIndex ?? 0;
  const failures = new Map<string, number>();
  const slots: (MqttClient | undefined)[] = new Array(opts.credentials.length);
  const connectLatency = new Float64Array(opts.credentials.length).fill(Number.NaN);
  const onMessage = (topic: string, payload: Buffer) => {
    if (topic !== 'attributes/response') return;
    let body: unknown;
    try {
      body = JSON.parse(payload.toString());
    } catch {
      body = undefined;
    }
    if ((body as { result?: unknown } | undefined)?.result === 1) events.responsesOk++;
    else {
      events.responsesBad++;
      if (events.badSamples.length < 5) events.badSamples.push(payload.toString().slice(0, 200));
    }
  };

  const started = performance.now();
  await pool(opts.credentials.length, opts.concurrency, async (i) => {
    if (opts.stopping?.()) return;
    const { username, password } = opts.credentials[i]!;
    const t0 = performance.now();
    const client = mqtt.connect({
      host: '127.0.0.1',
      port: opts.port,
      protocol: 'mqtt',
      protocolVersion: 4,
      username,
      password,
      clientId: `bench-${firstIndex + i}`,
      clean: true,
      keepalive: 120,
      reconnectPeriod: 0,
      connectTimeout: opts.timeoutMs,
      resubscribe: false,
    });
    // Late errors (after a failure was recorded, or on a live connection) must not throw.
    client.on('error', () => {});
    const error = await new Promise<string | undefined>((resolve) => {
      const done = (reason: string | undefined) => {
        client.off('connect', onConnect);
        client.off('error', onError);
        client.off('close', onClose);
        resolve(reason);
      };
      const onConnect = () => done(undefined);
      const onError = (err: Error) => done(err.message || String((err as { code?: unknown }).code));
      const onClose = () => done('closed before CONNACK');
      client.once('connect', onConnect);
      client.once('error', onError);
      client.once('close', onClose);
    });
    if (error) {
      count(failures, error);
      client.end(true);
      return;
    }
    connectLatency[i] = performance.now() - t0;
    slots[i] = client;
    client.on('message', onMessage);
    client.once('close', () => {
      if (!client.disconnecting) events.dropped++;
    });
  });
  const clients = slots.filter((c): c is MqttClient => c !== undefined);
  return {
    clients,
    events,
    failures,
    ms: performance.now() - started,
    connectLatency: connectLatency.filter((v) => !Number.isNaN(v)),
  };
}

/** Subscribes every client to `topic`; answers the time taken and the refused or failed subscriptions. */
export async function subscribeFleet(
  clients: MqttClient[],
  topic: string,
  concurrency: number,
): Promise<{ ms: number; failed: number }> {
  let failed = 0;
  const started = performance.now();
  await pool(clients.length, concurrency, async (i) => {
    const granted = await clients[i]!.subscribeAsync(topic, { qos: 0 }).catch(() => undefined);
    if (!granted || granted.some((g) => g.qos === 128)) failed++;
  });
  return { ms: performance.now() - started, failed };
}

export interface ReportRun {
  /** Reports published in the timed window and in the warm-up. */
  sent: number;
  warmupSent: number;
  acked: number;
  failed: number;
  /** Published but never acknowledged within the grace period. */
  unacked: number;
  /** Skipped because their client was no longer connected. */
  skipped: number;
  /** Publish → PUBACK of the reports of the timed window, ms, sorted. */
  latencies: Float64Array;
  /** Reports per second actually published in the timed window. */
  rate: number;
  /** p50/p99/max latency of the reports sent in each second of the timed window. */
  perSecond: Array<{ p50: number; p99: number; max: number }>;
}

/**
 * Publishes QoS 1 reports on `attributes` at `rate` per second in total, round-robin over the
 * clients, for `warmupS` untimed then `durationS` timed seconds, and times each publish → PUBACK.
 * Open loop: the schedule does not wait for acknowledgements, so a slow broker shows as latency.
 */
export async function reportLoad(opts: {
  clients: MqttClient[];
  rate: number;
  warmupS: number;
  durationS: number;
  payload: () => string;
  graceMs: number;
}): Promise<ReportRun> {
  const { clients, rate } = opts;
  const warmupMs = opts.warmupS * 1000;
  const endMs = warmupMs + opts.durationS * 1000;
  const latencies: number[] = [];
  /** Latencies by the second of the timed window they were sent in. */
  const bySecond: number[][] = Array.from({ length: opts.durationS }, () => []);
  let issued = 0;
  let warmupSent = 0;
  let sent = 0;
  let done = 0;
  let acked = 0;
  let failed = 0;
  let skipped = 0;
  const started = performance.now();

  const publishOne = (k: number, now: number) => {
    const client = clients[k % clients.length]!;
    if (!client.connected) {
      skipped++;
      return;
    }
    // The k-th report is due at k / rate seconds: the ones due after the warm-up are timed.
    const timed = (k * 1000) / rate >= warmupMs;
    if (timed) sent++;
    else warmupSent++;
    client.publish('attributes', opts.payload(), { qos: 1 }, (err) => {
      done++;
      if (err) return void failed++;
      acked++;
      if (!timed) return;
      const ms = performance.now() - now;
      latencies.push(ms);
      bySecond[Math.min(opts.durationS - 1, Math.floor(((k * 1000) / rate - warmupMs) / 1000))]!.push(ms);
    });
  };

  await new Promise<void>((resolve) => {
    // Every 2 ms, publish what the schedule says is due by now (timers are not precise enough for
    // one message each millisecond; catching up keeps the average rate exact).
    const timer = setInterval(() => {
      const now = performance.now();
      const elapsed = Math.min(now - started, endMs);
      const due = Math.floor((elapsed * rate) / 1000);
      while (issued < due) publishOne(issued++, now);
      if (elapsed >= endMs) {
        clearInterval(timer);
        resolve();
      }
    }, 2);
  });

  // Wait for the acknowledgements still in flight.
  const deadline = performance.now() + opts.graceMs;
  const total = () => sent + warmupSent;
  while (done < total() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));

  const sorted = Float64Array.from(latencies).sort();
  const perSecond = bySecond.map((values) => {
    const v = Float64Array.from(values).sort();
    return { p50: percentile(v, 50), p99: percentile(v, 99), max: percentile(v, 100) };
  });
  return {
    sent,
    warmupSent,
    acked,
    failed,
    unacked: total() - done,
    skipped,
    latencies: sorted,
    rate: sent / opts.durationS,
    perSecond,
  };
}

/** Closes every client without waiting for a DISCONNECT round trip; answers the time taken. */
export async function closeFleet(clients: MqttClient[]): Promise<number> {
  const started = performance.now();
  await Promise.all(clients.map((c) => new Promise<void>((resolve) => c.end(true, {}, () => resolve()))));
  return performance.now() - started;
}

/** The `p`-th percentile (0–100) of sorted values, nearest rank. */
export function percentile(sorted: Float64Array, p: number): number {
  if (!sorted.length) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}
