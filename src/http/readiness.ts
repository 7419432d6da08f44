import { z } from 'zod';
import type { IngestStats } from '../domain/telemetry/ingest.ts';
import { envelope } from './routes/route.ts';

/**
 * Whether this process should be sent traffic (`/readyz`, `/health`): the database answers within
 * a short timeout, every listener is bound, the report pipeline is not holding submitters back nor
 * retrying writes against an unavailable database, and the process is not draining after SIGTERM.
 * Liveness (`/livez`) is only that the process answers.
 */
export interface ReadinessOptions {
  /** A trivial query on the database; omitted = not checked (an app without a database of its own). */
  ping?: () => Promise<unknown>;
  /** How long the database may take to answer `ping`. */
  dbTimeoutMs?: number;
  ingest: () => IngestStats;
  /** Whether to wait for `listening()` (main.ts calls it once every listener is bound). */
  awaitListeners?: boolean;
  /** A write retried within this long ago counts as "retrying" (the pipeline backs off up to 5 s). */
  retryWindowMs?: number;
  clock?: () => number;
  /**
   * Cluster mode: this node's id and cluster, and NATS's state, shown by `/readyz` (docs/cluster.md §6). NATS
   * being away does not make the node unready: it keeps serving the devices it holds (§5), and a load
   * balancer that drained every node at once would cut off every device.
   */
  node?: { id: string; cluster: string; nats: () => string };
  /** Told when readiness changes (with the failing checks), so an outage shows in the log too. */
  logger?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
}

/** The first error code along the cause chain (drizzle wraps the driver's error). */
function codeOf(err: unknown): string | undefined {
  for (
    let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0;
    e && depth < 5;
    e = e.cause as typeof e, depth++
  ) {
    if (typeof e.code === 'string') return e.code;
  }
  return undefined;
}

export type CheckName = 'draining' | 'listeners' | 'database' | 'ingest';

export interface ReadinessResult {
  ready: boolean;
  /** Cluster mode: which node answered, and whether it reaches NATS. */
  node?: { id: string; cluster: string; nats: string };
  /** The checks that failed, each with why. */
  failing: Array<{ check: CheckName; message: string }>;
}

export function createReadiness({
  ping,
  dbTimeoutMs = 2_000,
  ingest,
  awaitListeners = false,
  retryWindowMs = 10_000,
  clock = Date.now,
  logger,
  node,
}: ReadinessOptions) {
  let bound = !awaitListeners;
  /** The checks that failed last time ('' = ready), to log changes only. */
  let lastState: string | undefined;
  let draining = false;
  let lastRetries = ingest().retries;
  let lastRetryAt = -Infinity;
  /** One probe of the database at a time: probes during a hang do not pile up queries. */
  let inFlight: Promise<string | undefined> | undefined;

  function probeDatabase(): Promise<string | undefined> {
    if (!ping) return Promise.resolve(undefined);
    inFlight ??= new Promise<string | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(`no answer within ${dbTimeoutMs} ms`), dbTimeoutMs);
      timer.unref?.();
      ping()
        .then(
          () => resolve(undefined),
          (err: unknown) => resolve(`unreachable (${codeOf(err) ?? 'error'})`),
        )
        .finally(() => clearTimeout(timer));
    }).finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  }

  function ingestProblem(): string | undefined {
    const stats = ingest();
    if (stats.retries !== lastRetries) {
      lastRetries = stats.retries;
      lastRetryAt = clock();
    }
    if (stats.held > 0) return `${stats.held} submitters held back (${stats.pendingValues} values pending)`;
    if (clock() - lastRetryAt < retryWindowMs) return 'writes are being retried: the database is unavailable';
    return undefined;
  }

  return {
    /** Every listener is bound. */
    listening(): void {
      bound = true;
    },
    /** SIGTERM: from now on not ready, so a load balancer stops sending new work. */
    drain(): void {
      draining = true;
    },
    get draining(): boolean {
      return draining;
    },
    async check(): Promise<ReadinessResult> {
      const failing: ReadinessResult['failing'] = [];
      if (draining) failing.push({ check: 'draining', message: 'shutting down' });
      if (!bound) failing.push({ check: 'listeners', message: 'not all listeners are bound yet' });
      const db = await probeDatabase();
      if (db) failing.push({ check: 'database', message: db });
      const held = ingestProblem();
      if (held) failing.push({ check: 'ingest', message: held });
      const ready = failing.length === 0;
      const state = failing.map((f) => f.check).join(',');
      if (state !== lastState && (lastState !== undefined || !ready)) {
        if (ready) logger?.info({}, 'ready');
        else logger?.warn({ failing }, 'not ready');
      }
      lastState = state;
      return { ready, failing, ...(node ? { node: { id: node.id, cluster: node.cluster, nats: node.nats() } } : {}) };
    },
  };
}
export type Readiness = ReturnType<typeof createReadiness>;

const HealthInfo = z.object({
  status: z.literal('ok'),
  node: z.string().optional().describe('Cluster mode: the NODE_ID of the node that answered'),
  cluster: z.string().optional().describe('Cluster mode: CLUSTER_NAME'),
  nats: z.enum(['connected', 'reconnecting']).optional().describe('Cluster mode: whether the node reaches NATS now'),
});
const NotReady = z.object({
  result: z.literal(false),
  errcode: z.literal(503),
  message: z.string(),
  errors: z.array(z.object({ path: z.enum(['draining', 'listeners', 'database', 'ingest']), message: z.string() })),
});

/** The OpenAPI description of `/livez`, `/readyz` and `/health` (http-api.md §8). */
export function healthSchema(route: '/livez' | '/readyz' | '/health') {
  const live = route === '/livez';
  return {
    tags: ['Health'],
    summary: live ? 'Liveness: the process answers' : 'Readiness: whether this server should be sent traffic',
    description: live
      ? 'No token. Always `{"result": true, "info": {"status": "ok"}}` while the process runs.'
      : 'No token. HTTP 503 with the failure envelope (errcode 503) while starting, draining after SIGTERM, when the database ' +
        'does not answer or the report pipeline is held back; `errors` names each failing check.' +
        (route === '/health' ? ' The same check as `/readyz`.' : ''),
    response: live ? { 200: envelope(HealthInfo) } : { 200: envelope(HealthInfo), 503: NotReady },
  };
}
