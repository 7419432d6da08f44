import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CommandState } from '../db/schema/index.ts';
import type {
  DropReason,
  LoginResult,
  MetricsPort,
  MetricTransport,
  TransportMetrics,
  WebhookResult,
} from '../domain/metrics-port.ts';

/** How long a scrape waits for this process's PostgreSQL connection count. */
const DB_COUNT_DEADLINE_MS = 500;

/** Methods the API answers; any other one a client sends is counted as `other` (a bounded label). */
const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** The promise's value, or a rejection once `ms` have passed (the timer does not hold the process). */
function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}
import type { IngestStats } from '../domain/telemetry/ingest.ts';

/**
 * The server's own metric names (docs/metrics.md), as agreed with the dashboard and the bench: renaming one
 * breaks them. prom-client's default process and Node.js metrics come on top, under their standard names.
 */
export const METRIC_NAMES: readonly string[] = [
  'iot_connections',
  'iot_viewer_connections',
  'iot_messages_received_total',
  'iot_messages_sent_total',
  'iot_messages_dropped_total',
  'iot_logins_total',
  'iot_ingest_values_total',
  'iot_ingest_batches_total',
  'iot_ingest_batch_seconds',
  'iot_ingest_pending_values',
  'iot_ingest_retries_total',
  'iot_ingest_held_submitters',
  'iot_commands_total',
  'iot_alarms_raised_total',
  'iot_alarms_cleared_total',
  'iot_webhook_deliveries_total',
  'iot_http_request_duration_seconds',
  'iot_db_pool_max',
  'iot_db_connections',
];

/** prom-client default metrics whose every scrape walks all the process's handles (see createMetrics). */
const O_N_DEFAULT_METRICS: readonly string[] = [
  'nodejs_active_handles',
  'nodejs_active_handles_total',
  'nodejs_active_resources',
  'nodejs_active_resources_total',
];

const TRANSPORTS: readonly MetricTransport[] = ['mqtt', 'tcp', 'http'];
/** Device sessions exist over these only (HTTP devices hold none). */
const SESSION_TRANSPORTS: readonly MetricTransport[] = ['mqtt', 'tcp'];
const DROP_REASONS: readonly DropReason[] = [
  'rate_limited',
  'invalid',
  'unauthorized',
  'too_large',
  'backpressure',
  'duplicate',
  'other',
];
const LOGIN_RESULTS: readonly LoginResult[] = ['ok', 'bad_credentials', 'rate_limited', 'refused'];
const COMMAND_STATES: readonly CommandState[] = ['queued', 'sent', 'replied', 'timeout', 'expired', 'failed'];
const WEBHOOK_RESULTS: readonly WebhookResult[] = ['ok', 'failed', 'retried', 'dropped'];

/** This process's PostgreSQL pool (src/db/client.ts); absent on PGlite. */
export interface PoolSource {
  max: number;
  /** This process's connections by state, from pg_stat_activity. */
  connections(): Promise<{ active: number; idle: number }>;
}

export interface Metrics extends MetricsPort {
  readonly registry: Registry;
  /** The Content-Type of `render()`'s text (Prometheus text format 0.0.4). */
  readonly contentType: string;
  render(): Promise<string>;
  /** The ingest pipeline's figures, read at every scrape. */
  watchIngest(stats: () => IngestStats): void;
  /** The PostgreSQL pool, read at every scrape; never called on PGlite (0 is reported). */
  watchDatabase(pool: PoolSource): void;
  /** One HTTP request answered: `route` is the route template or "unmatched", never the URL. */
  httpRequest(method: string, route: string, statusCode: number, seconds: number): void;
}

/** One series of a hot-path counter: a plain number bumped by the caller, handed to prom-client at scrape time. */
interface Tally {
  labels: Record<string, string>;
  value: number;
  reported: number;
}

/**
 * A counter whose series are plain numbers: the hot path adds 1 to a field (prom-client's own `inc` builds a
 * label hash string at every call); the scrape adds what accrued since the last one.
 */
function tallyCounter(registry: Registry, name: string, help: string, labelNames: string[], tallies: Tally[]) {
  const counter = new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      for (const t of tallies) {
        const delta = t.value - t.reported;
        if (delta > 0) this.inc(t.labels, delta);
        t.reported = t.value;
      }
    },
  });
  // Every series exists from the start at 0: a rate() over it needs no first event.
  for (const t of tallies) counter.inc(t.labels, 0);
  return counter;
}

const tally = (labels: Record<string, string> = {}): Tally => ({ labels, value: 0, reported: 0 });

/** Records `Tally`s by key, all made up front. */
function tallies<K extends string>(keys: readonly K[], labels: (key: K) => Record<string, string>): Record<K, Tally> {
  return Object.fromEntries(keys.map((k) => [k, tally(labels(k))])) as Record<K, Tally>;
}

/**
 * One registry per server (never prom-client's global one: tests run several servers in one process), with
 * every series labelled `node` (docs/metrics.md §1). All series are made here, at creation: the counters the
 * transports and the domain bump are plain numbers, read when Prometheus scrapes.
 */
export function createMetrics({ node }: { node: string }): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ node });
  collectDefaultMetrics({ register: registry });
  // Left out: each scrape of these lists every handle of the process (every device socket) into an array, and
  // one counts them by kind: 1.5–2 ms of a scrape's ~5 ms of CPU with 2,000 sockets, growing with them
  // (docs/metrics.md §3). iot_connections and iot_viewer_connections count the sockets that matter.
  for (const name of O_N_DEFAULT_METRICS) registry.removeSingleMetric(name);

  let ingestStats: (() => IngestStats) | undefined;
  let pool: PoolSource | undefined;

  // Device connections and messages, by transport.
  const open = tallies(SESSION_TRANSPORTS, (transport) => ({ transport }));
  const received = tallies(TRANSPORTS, (transport) => ({ transport }));
  const sent = tallies(TRANSPORTS, (transport) => ({ transport }));
  const dropped = new Map<MetricTransport, Record<DropReason, Tally>>();
  const logins = new Map<MetricTransport, Record<LoginResult, Tally>>();
  for (const transport of TRANSPORTS) {
    dropped.set(
      transport,
      tallies(DROP_REASONS, (reason) => ({ transport, reason })),
    );
    logins.set(
      transport,
      tallies(LOGIN_RESULTS, (result) => ({ transport, result })),
    );
  }
  const viewers = tally();
  const commands = tallies(COMMAND_STATES, (state) => ({ state }));
  const alarmsRaised = tally();
  const alarmsCleared = tally();
  const webhooks = tallies(WEBHOOK_RESULTS, (result) => ({ result }));

  new Gauge({
    name: 'iot_connections',
    help: 'Device sessions open now, by transport (MQTT over WebSocket counts as mqtt; gateway sub-devices not counted)',
    labelNames: ['transport'],
    registers: [registry],
    collect() {
      for (const t of SESSION_TRANSPORTS) this.set({ transport: t }, open[t as 'mqtt'].value);
    },
  });
  new Gauge({
    name: 'iot_viewer_connections',
    help: 'Application MQTT subscribers (view key) connected now',
    registers: [registry],
    collect() {
      this.set(viewers.value);
    },
  });
  tallyCounter(
    registry,
    'iot_messages_received_total',
    'Device messages received (upstream), by transport',
    ['transport'],
    Object.values(received),
  );
  tallyCounter(
    registry,
    'iot_messages_sent_total',
    'Messages sent to devices (downstream: answers, commands, pushes), by transport',
    ['transport'],
    Object.values(sent),
  );
  tallyCounter(
    registry,
    'iot_messages_dropped_total',
    'Device messages refused or dropped, by transport and reason',
    ['transport', 'reason'],
    [...dropped.values()].flatMap((r) => Object.values(r)),
  );
  tallyCounter(
    registry,
    'iot_logins_total',
    'Device logins, by transport and result',
    ['transport', 'result'],
    [...logins.values()].flatMap((r) => Object.values(r)),
  );

  // Ingest: the pipeline's own figures at scrape time, and the time of each batch.
  const read = <K extends keyof IngestStats>(key: K) => ingestStats?.()[key] ?? 0;
  let valuesReported = 0;
  let batchesReported = 0;
  let retriesReported = 0;
  /** Counts only grow; a pipeline made anew (tests) starts again from what it says. */
  const grow = (counter: Counter, now: number, before: number) => {
    if (now > before) counter.inc(now - before);
    return now;
  };
  new Counter({
    name: 'iot_ingest_values_total',
    help: 'Attribute values written to the history',
    registers: [registry],
    collect() {
      valuesReported = grow(this, read('values'), valuesReported);
    },
  });
  new Counter({
    name: 'iot_ingest_batches_total',
    help: 'Ingest batches committed',
    registers: [registry],
    collect() {
      batchesReported = grow(this, read('batches'), batchesReported);
    },
  });
  const batchSeconds = new Histogram({
    name: 'iot_ingest_batch_seconds',
    help: 'Time to write one ingest batch, from the start of its write to its commit (retries included)',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  new Gauge({
    name: 'iot_ingest_pending_values',
    help: 'Attribute values submitted and not yet written',
    registers: [registry],
    collect() {
      this.set(read('pendingValues'));
    },
  });
  new Counter({
    name: 'iot_ingest_retries_total',
    help: 'Ingest batch writes retried because the database was unavailable',
    registers: [registry],
    collect() {
      retriesReported = grow(this, read('retries'), retriesReported);
    },
  });
  new Gauge({
    name: 'iot_ingest_held_submitters',
    help: 'Submitters waiting for room in the ingest pipeline (back-pressure engaged when > 0)',
    registers: [registry],
    collect() {
      this.set(read('held'));
    },
  });

  tallyCounter(registry, 'iot_commands_total', 'Commands reaching each state', ['state'], Object.values(commands));
  tallyCounter(registry, 'iot_alarms_raised_total', 'Alarms raised', [], [alarmsRaised]);
  tallyCounter(
    registry,
    'iot_alarms_cleared_total',
    'Alarms ended (recovered, cleared by an operator, or their rule changed or deleted)',
    [],
    [alarmsCleared],
  );
  tallyCounter(
    registry,
    'iot_webhook_deliveries_total',
    'Alarm webhook delivery attempts, by result (retried: failed, another attempt is scheduled)',
    ['result'],
    Object.values(webhooks),
  );

  const http = new Histogram({
    name: 'iot_http_request_duration_seconds',
    help: 'HTTP requests, by method, route template ("unmatched" when no route) and status class',
    labelNames: ['method', 'route', 'status_class'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });

  new Gauge({
    name: 'iot_db_pool_max',
    help: 'PostgreSQL connections the pool may open (0 on the embedded database)',
    registers: [registry],
    collect() {
      this.set(pool?.max ?? 0);
    },
  });
  new Gauge({
    name: 'iot_db_connections',
    help: "This process's PostgreSQL connections by state, from pg_stat_activity at scrape time (0 on the embedded database)",
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      if (!pool) {
        this.set({ state: 'active' }, 0);
        this.set({ state: 'idle' }, 0);
        return;
      }
      // The database may be what is failing when someone looks: a scrape must still answer (with the
      // ingest's retries and back-pressure), so the count gets a short deadline and reads "unknown" (NaN)
      // when it cannot be had.
      const counts = await withDeadline(pool.connections(), DB_COUNT_DEADLINE_MS).catch(() => undefined);
      this.set({ state: 'active' }, counts?.active ?? Number.NaN);
      this.set({ state: 'idle' }, counts?.idle ?? Number.NaN);
    },
  });

  const transports = new Map<MetricTransport, TransportMetrics>();
  for (const t of TRANSPORTS) {
    const drops = dropped.get(t)!;
    const results = logins.get(t)!;
    const opened = open[t as 'mqtt'] as Tally | undefined;
    const r = received[t];
    const s = sent[t];
    transports.set(t, {
      connectionOpened: () => {
        if (opened) opened.value++;
      },
      connectionClosed: () => {
        if (opened) opened.value--;
      },
      received: () => {
        r.value++;
      },
      sent: () => {
        s.value++;
      },
      dropped: (reason) => {
        drops[reason].value++;
      },
      login: (result) => {
        results[result].value++;
      },
    });
  }

  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
    watchIngest: (stats) => {
      ingestStats = stats;
    },
    watchDatabase: (source) => {
      pool = source;
    },
    httpRequest: (method, route, statusCode, seconds) => {
      http.observe(
        {
          method: HTTP_METHODS.has(method) ? method : 'other',
          route,
          status_class: `${Math.floor(statusCode / 100)}xx`,
        },
        seconds,
      );
    },
    transport: (t) => transports.get(t)!,
    viewerConnected: () => {
      viewers.value++;
    },
    viewerDisconnected: () => {
      viewers.value--;
    },
    commandState: (state, count = 1) => {
      commands[state].value += count;
    },
    alarmRaised: () => {
      alarmsRaised.value++;
    },
    alarmCleared: () => {
      alarmsCleared.value++;
    },
    webhookDelivery: (result) => {
      webhooks[result].value++;
    },
    ingestBatch: (seconds) => batchSeconds.observe(seconds),
  };
}
