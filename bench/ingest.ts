/**
 * bench/ingest — attribute reports from simulated devices into the real server (src/main.ts, a child process),
 * each device reporting 3 attributes with QoS 1 as fast as its acknowledgements allow, for a fixed duration;
 * then the rows actually stored are counted. Each load shape (`--shapes`, devices × reports in flight per
 * device; by default 1,000 × 1 and 200 × 4) runs against our server, a bare Aedes broker that stores nothing,
 * and — on PostgreSQL — the "do-it-yourself" reference (bench/lib/mqtt-diy-broker.ts: bare Aedes whose PUBACK
 * waits for a group-commit INSERT of the same values), in rotating order each round; the figures are printed
 * with the ratios ours/bare and ours/DIY against their goals (GOAL MISSED and exit 1 on a miss). Last, the
 * series and aggregation calls are timed over a history of `--series-rows` rows (10 million by default on
 * PostgreSQL). Each round also runs our server with GET /metrics on (METRICS_TOKEN) and scraped every
 * `--metrics-scrape` seconds, as Prometheus would, beside one without (sent the same requests, answering 404),
 * both paced at `--metrics-rate` reports a second with half of the first shape's devices each: the CPU metrics
 * cost per report (docs/metrics.md; the goal is at most 3% more). See bench/README.md.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/iot_bench npm run bench:ingest
 *   npm run bench:ingest -- [--shapes 1000x1,200x4] [--duration 10] [--warmup 3] [--rounds 3] [--rules 5] [--series-rows N] [--metrics-scrape 5] [--metrics-rate 2000] [--cpu-prof DIR]
 *   npm run bench:ingest -- --devices 50 --inflight 2 …   # one shape, 50x2 (instead of --shapes)
 */
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import type { MqttClient } from 'mqtt';
import { pino } from 'pino';
import postgres from 'postgres';
import { openDatabase, type OpenedDatabase } from '../src/db/open.ts';
import { devices } from '../src/db/schema/index.ts';
import { rowsOf } from '../src/db/client.ts';
import { createServices } from '../src/composition/services.ts';
import { Sensors } from '../simulator/device.ts';
import { forgetBenchProject } from './lib/forget-project.ts';
import { closeFleet, connectFleet, percentile, type Credentials } from './lib/mqtt-load.ts';
import { cpuByPid, cpuBetween, cpuMsOf, machineBusyMs, memoryOf, tail, type Child } from './lib/mqtt-proc.ts';
import { seedMqttDevices } from './lib/mqtt-seed.ts';
import { randomToken } from '../src/lib/ids.ts';
import { startBare, startOurs } from './lib/mqtt-servers.ts';
import { benchRun, reportMissedGoals } from './lib/run.ts';
import { benchArgs, intArg as benchInt } from './lib/args.ts';
import { countDiyRows, createDiyTable, diyCounts, dropDiyTable, startDiy } from './lib/ingest-diy.ts';

const args = benchArgs('ingest', {
  shapes: { type: 'string' },
  devices: { type: 'string' },
  duration: { type: 'string', default: '10' },
  warmup: { type: 'string', default: '3' },
  inflight: { type: 'string' },
  'series-rows': { type: 'string' },
  'cpu-prof': { type: 'string' },
  rules: { type: 'string', default: '5' },
  rounds: { type: 'string', default: '3' },
  'metrics-scrape': { type: 'string', default: '5' },
  'metrics-rate': { type: 'string', default: '2000' },
});
const intArg = (name: string, raw: string | undefined, min: number, max: number) =>
  benchInt('ingest', name, raw, min, max);
const databaseUrl = process.env.DATABASE_URL?.trim() || undefined;
/** A load shape: `devices` devices, each keeping `inflight` reports outstanding. */
interface Shape {
  devices: number;
  inflight: number;
  name: string;
}
/** The goals of the issue on ingest efficiency (bench/README.md): ours/bare by shape, ours/DIY for every shape. */
const BARE_GOALS: Record<string, number> = { '1000x1': 0.6, '200x4': 0.5 };
const DIY_GOAL = 1.0;
function shapesArg(): Shape[] {
  const fail = (msg: string): never => {
    console.error(`bench/ingest: ${msg}`);
    return process.exit(2);
  };
  if (args.shapes !== undefined && (args.devices !== undefined || args.inflight !== undefined))
    fail('--shapes replaces --devices and --inflight: give one or the other');
  const raw =
    args.shapes ?? ((args.devices ?? args.inflight) ? `${args.devices ?? 1000}x${args.inflight ?? 1}` : '1000x1,200x4');
  const shapes = raw.split(',').map((part) => {
    const m = /^\s*(\d+)\s*x\s*(\d+)\s*$/.exec(part);
    if (!m) return fail(`--shapes: "${part}" is not <devices>x<inflight> (e.g. 1000x1,200x4)`);
    const devices = intArg('devices', m[1], 1, 20_000);
    const inflight = intArg('inflight', m[2], 1, 100);
    return { devices, inflight, name: `${devices}x${inflight}` };
  });
  const names = shapes.map((s) => s.name);
  if (new Set(names).size !== names.length) fail(`--shapes: a shape is given twice (${raw})`);
  return shapes;
}
const SHAPES = shapesArg();
/** Devices seeded: the largest shape's; a smaller shape reports through the first of them. */
const N = Math.max(...SHAPES.map((s) => s.devices));
const DURATION = intArg('duration', args.duration, 1, 600);
const WARMUP = intArg('warmup', args.warmup, 0, 60);
const SERIES_ROWS = intArg(
  'series-rows',
  args['series-rows'] ?? (databaseUrl ? '10000000' : '1000000'),
  0,
  100_000_000,
);
const RULES = intArg('rules', args.rules, 0, 50);
/** Bare and ours run in turn this many times; the figures are medians (the machine's noise is ±20% per run). */
const ROUNDS = intArg('rounds', args.rounds, 1, 20);
/** Seconds between scrapes of /metrics in the metrics-on runs; 0 leaves those runs out. */
const METRICS_SCRAPE = intArg('metrics-scrape', args['metrics-scrape'], 0, 60);
/**
 * Reports per second offered to the metrics on/off pair, paced (open loop), far below what the broker takes at
 * saturation: its CPU per report then measures the work per report, not how the batches and the load generator
 * share a saturated machine (bench/README "Metrics on and off, at a fixed rate"). 0, and always on the embedded
 * database (two servers cannot open one data directory): the pair runs closed-loop under the first shape instead,
 * one after the other, as the shape's own runs do.
 */
const METRICS_RATE = databaseUrl ? intArg('metrics-rate', args['metrics-rate'], 0, 100_000) : 0;
/** The goal for metrics: at most this much more broker CPU per report with them on (docs/metrics.md). */
const METRICS_CPU_GOAL = 1.03;
const ACK_GRACE_MS = 30_000;
/**
 * A directory for V8 CPU profiles (`node --cpu-prof`), written when each server stops: ours in it, bare Aedes
 * and the DIY reference in its `bare/` and `diy/`, to compare where each spends its time.
 */
const CPU_PROF = args['cpu-prof'] ? path.resolve(args['cpu-prof']) : undefined;
const cpuProfOf = (kind: 'bare' | 'diy') => (CPU_PROF ? path.join(CPU_PROF, kind) : undefined);
const MiB = 1024 * 1024;

const frame = benchRun('ingest', 60);
const tmp = frame.tmp;
const dataDir = path.join(tmp, 'data');
const problems: string[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = pino({ level: 'warn' });
const openDb = () => openDatabase({ DATA_DIR: dataDir, DATABASE_URL: databaseUrl }, log);

interface LoadResult {
  /** Reports acknowledged in the timed window, and in all (warm-up and drain included). */
  timedAcked: number;
  totalAcked: number;
  failed: number;
  unacked: number;
  latencies: Float64Array;
  /** Wall-clock bounds of the timed window (ms since the epoch). */
  windowStart: number;
  windowEnd: number;
  brokerCpuMs: number;
  dbCpuMs: number;
  /** CPU of this process (the load generator) and of the whole machine (ms of one core). */
  loadCpuMs: number;
  machineMs: number;
  rssPeak: number;
  rssEnd: number;
}

/** How the load is driven: closed loop with `inflight` reports outstanding per client, or paced at `rate` a second. */
type Drive = { inflight: number } | { rate: number };

/**
 * The load for the warm-up and the timed window, then a wait for what is in flight. Closed loop: every client
 * keeps `inflight` QoS 1 reports outstanding and publishes the next one when one is acknowledged. Paced: QoS 1
 * reports go out at `rate` a second, in turn from each client, whatever is outstanding.
 */
async function loadLoop(
  clients: MqttClient[],
  drive: Drive,
  broker: Child,
  dbPids: () => Promise<number[]>,
): Promise<LoadResult> {
  const sensors = clients.map(() => new Sensors());
  const latencies: number[] = [];
  let timed = false;
  let running = true;
  let timedAcked = 0;
  let totalAcked = 0;
  let failed = 0;
  let issued = 0;
  let done = 0;
  const closed = 'inflight' in drive;
  const publish = (i: number) => {
    const c = clients[i]!;
    if (!running || !c.connected) return;
    const v = sensors[i]!.next();
    const t0 = performance.now();
    const inWindow = timed;
    issued++;
    c.publish(
      'attributes',
      JSON.stringify({ temperature: v.temperature, humidity: v.humidity, switch: v.switch }),
      { qos: 1 },
      (err) => {
        done++;
        if (err) failed++;
        else {
          totalAcked++;
          if (inWindow && timed) {
            timedAcked++;
            latencies.push(performance.now() - t0);
          }
        }
        if (closed) publish(i);
      },
    );
  };
  let pacer: NodeJS.Timeout | undefined;
  if ('inflight' in drive) {
    for (let k = 0; k < drive.inflight; k++) for (let i = 0; i < clients.length; i++) publish(i);
  } else {
    // Whatever the timer's drift, as many reports as `rate` says by now.
    const started = performance.now();
    let next = 0;
    pacer = setInterval(() => {
      const due = Math.floor(((performance.now() - started) / 1000) * drive.rate);
      // A client that lost its connection publishes nothing: a turn through all of them without a report ends
      // the tick (the run's checks then report the lost devices), so the timer never spins.
      let idle = 0;
      while (issued < due && running && idle < clients.length) {
        const before = issued;
        publish(next);
        next = (next + 1) % clients.length;
        idle = issued === before ? idle + 1 : 0;
      }
    }, 5);
  }
  await sleep(WARMUP * 1000);
  const pids0 = await dbPids();
  const db0 = cpuByPid(pids0);
  const cpu0 = cpuMsOf(broker.pid);
  const load0 = process.cpuUsage();
  const machine0 = machineBusyMs();
  const windowStart = Date.now();
  timed = true;
  let rssPeak = 0;
  for (let s = 0; s < DURATION * 4; s++) {
    await sleep(250);
    rssPeak = Math.max(rssPeak, memoryOf(broker.pid).rss);
  }
  timed = false;
  const windowEnd = Date.now();
  const brokerCpuMs = cpuMsOf(broker.pid) - cpu0;
  const load = process.cpuUsage(load0);
  const loadCpuMs = (load.user + load.system) / 1000;
  const machineMs = machineBusyMs() - machine0;
  const dbCpuMs = pids0.length ? cpuBetween(db0, cpuByPid(pids0)) : Number.NaN;
  running = false;
  clearInterval(pacer);
  const deadline = performance.now() + ACK_GRACE_MS;
  while (done < issued && performance.now() < deadline) await sleep(20);
  return {
    timedAcked,
    totalAcked,
    failed,
    unacked: issued - done,
    latencies: Float64Array.from(latencies).sort(),
    windowStart,
    windowEnd,
    brokerCpuMs,
    dbCpuMs,
    loadCpuMs,
    machineMs,
    rssPeak,
    rssEnd: memoryOf(broker.pid).rss,
  };
}

/**
 * Our server, with the limits that would otherwise be what is measured raised far out of reach; with
 * `metricsToken`, GET /metrics is on and answers that bearer token.
 */
function startOurServer(metricsToken?: string) {
  return startOurs({
    dataDir,
    databaseUrl,
    // Paced, the two servers of the metrics pair run at once: a log each.
    logFile: path.join(tmp, metricsToken ? 'ours-metrics.log' : 'ours.log'),
    env: {
      LOG_LEVEL: 'warn',
      // Devices report as fast as they are acknowledged: the per-device limit must not be what is measured.
      MQTT_RATE_LIMIT: '100000',
      DEVICE_RATE_LIMIT_MAX: '100000',
      // One project holds all 1,000 devices: its budget is set far above what is reached, so the
      // limiter still runs for every message but the pipeline's capacity is what is measured.
      PROJECT_MESSAGE_RATE: '10000000',
      // Tuning experiments: the pipeline's settings pass through (INGEST_CONCURRENCY=4 npm run bench:ingest).
      ...Object.fromEntries(
        Object.entries(process.env).filter((e): e is [string, string] => /^(INGEST|HISTORY)_/.test(e[0])),
      ),
      ...(metricsToken ? { METRICS_TOKEN: metricsToken } : {}),
    },
    cpuProf: CPU_PROF,
  });
}

/** GET /metrics with the bearer token `token` (none: no Authorization header). */
async function fetchMetrics(base: string, token: string | undefined) {
  const t0 = performance.now();
  const res = await fetch(`${base}/metrics`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
    signal: AbortSignal.timeout(10_000),
  });
  const body = await res.text();
  return { status: res.status, body, ms: performance.now() - t0 };
}

interface ScrapeStats {
  scrapes: number;
  failed: number;
  bytes: number;
  ms: number[];
  /** The last body scraped, for a look at the figures. */
  last: string;
}

/**
 * A scraper as Prometheus runs one: GET /metrics every `everyS` seconds from `start()` until `stop()`, one at a time
 * (a scrape still running when the next is due is not doubled). `expect`: the answer that counts as a success (the
 * metrics-off server of the pair gets the same requests and answers 404).
 */
function scraper(base: string, token: string, everyS: number, expect = 200) {
  const stats: ScrapeStats = { scrapes: 0, failed: 0, bytes: 0, ms: [], last: '' };
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;
  const scrape = () => {
    if (inFlight) return;
    inFlight = fetchMetrics(base, token)
      .then(
        (r) => {
          stats.scrapes++;
          if (r.status !== expect) stats.failed++;
          stats.bytes += r.body.length;
          stats.ms.push(r.ms);
          stats.last = r.body;
        },
        () => void stats.failed++,
      )
      .finally(() => (inFlight = undefined));
  };
  return {
    stats,
    start() {
      scrape();
      timer = setInterval(scrape, everyS * 1000);
    },
    async stop() {
      clearInterval(timer);
      await inFlight;
      return stats;
    },
  };
}

async function run(
  label: string,
  proc: { child: Child; port: number },
  credentials: Credentials[],
  drive: Drive,
  dbPids: () => Promise<number[]>,
  scrape?: ReturnType<typeof scraper>,
) {
  // Prometheus scrapes whatever the server does: from before the devices connect until it stops.
  scrape?.start();
  const fleet = await connectFleet({ port: proc.port, credentials, concurrency: 100, timeoutMs: 30_000 });
  if (fleet.clients.length < credentials.length)
    problems.push(`${label}: ${credentials.length - fleet.clients.length} devices did not connect`);
  const result = await loadLoop(fleet.clients, drive, proc.child, dbPids);
  await closeFleet(fleet.clients);
  const scraped = await scrape?.stop();
  if (scraped?.failed) problems.push(`${label}: ${scraped.failed} of ${scraped.scrapes} scrapes of /metrics failed`);
  if (!proc.child.alive()) throw new Error(`${label} died:\n${tail(proc.child.logFile, 30)}`);
  const stopped = await proc.child.stop(60_000);
  if (stopped.killed) problems.push(`${label}: did not stop within 60 s of SIGTERM`);
  if (result.failed || result.unacked)
    problems.push(`${label}: ${result.failed} reports failed, ${result.unacked} never acknowledged`);
  console.log(
    `[${label}] ${result.timedAcked} reports acknowledged in ${DURATION} s (${Math.round(result.timedAcked / DURATION)}/s), ` +
      `p50 ${percentile(result.latencies, 50).toFixed(1)} ms, p99 ${percentile(result.latencies, 99).toFixed(1)} ms; stopped in ${(stopped.ms / 1000).toFixed(1)} s` +
      (scraped ? `; ${scraped.scrapes} scrapes of /metrics` : ''),
  );
  return { ...result, scraped };
}

/** The value of an unlabelled series (`name{node="…"} 123`) in a Prometheus text exposition, or NaN. */
function sampleOf(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

/** Times `fn` `n` times after `warm` untimed calls: p50/p99 in ms. */
async function timeIt(n: number, warm: number, fn: (i: number) => Promise<unknown>) {
  for (let i = 0; i < warm; i++) await fn(i);
  const t: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    await fn(i);
    t.push(performance.now() - s);
  }
  const sorted = Float64Array.from(t).sort();
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

/**
 * Series speed (README "Telemetry history", reads): `rows` history rows over the last 30 days (1,000 devices × 2
 * identifiers), then a page of the series call and a one-day hourly aggregation for random devices,
 * through the domain services the HTTP routes call.
 */
async function seriesSpeed(db: OpenedDatabase, projectId: string, deviceIds: string[], rows: number) {
  const services = createServices({ db: db.db });
  const ids = deviceIds.slice(0, 1000);
  const perSeries = Math.max(1, Math.floor(rows / (ids.length * 2)));
  const now = Date.now();
  const span = 30 * 86_400_000;
  const step = Math.max(1, Math.floor(span / perSeries));
  await services.historyStore.ensurePartitions(
    Array.from({ length: 32 }, (_, i) => services.historyStore.dayOf(now - span) + i),
  );
  const seeded = performance.now();
  const chunk = Math.max(1, Math.floor(200_000 / perSeries)) * 2;
  for (let start = 0; start < ids.length; start += chunk / 2) {
    const part = ids.slice(start, start + chunk / 2);
    await db.db.execute(sql`
      insert into attribute_history (project_id, device_id, identifier, ts, num)
      select ${projectId}, d.id, i.ident, timestamptz 'epoch' + (${now}::int8 - k::int8 * ${step}::int8) * interval '1 millisecond', random() * 40
      from unnest(${sql.raw(`array[${part.map((p) => `'${p}'`).join(',')}]`)}::text[]) as d(id)
      cross join (values ('temperature'), ('humidity')) as i(ident)
      cross join generate_series(0, ${perSeries - 1}) as k`);
  }
  await db.db.execute(sql`analyze attribute_history`);
  const total = Number(
    rowsOf<{ n: string }>(
      await db.db.execute(sql`select count(*) as n from attribute_history where project_id = ${projectId}`),
    )[0]!.n,
  );
  console.log(
    `[series] ${total.toLocaleString('en-US')} history rows in the project (${perSeries} per series) after seeding in ${((performance.now() - seeded) / 1000).toFixed(0)} s`,
  );
  const scope = { projectId };
  const pick = (i: number) => ids[(i * 7919) % ids.length]!;
  const page = await timeIt(200, 20, (i) =>
    services.history.series(scope, pick(i), 'temperature', { page: 1, page_records: 20 }),
  );
  const deep = await timeIt(100, 10, (i) =>
    services.history.series(scope, pick(i), 'temperature', { page: 10, page_records: 100 }),
  );
  const day = now - 86_400_000;
  const agg = await timeIt(200, 20, (i) =>
    services.history.aggregate(scope, pick(i), {
      identifiers: ['temperature'],
      fn: 'avg',
      interval_ms: 3_600_000,
      start_time: day,
      end_time: now,
    }),
  );
  const agg2 = await timeIt(100, 10, (i) =>
    services.history.aggregate(scope, pick(i), {
      identifiers: ['temperature', 'humidity'],
      fn: 'max',
      interval_ms: 3_600_000,
      start_time: day,
      end_time: now,
    }),
  );
  const plan = rowsOf<{ 'QUERY PLAN': string }>(
    await db.db
      .execute(sql`explain (analyze, buffers) select (extract(epoch from ts) * 1000)::int8 as ts, num, bool, str, json from attribute_history
      where device_id = ${pick(1)} and identifier = 'temperature' and project_id = ${projectId}
        and ts >= to_timestamp(${now - span}::float8 / 1000) and ts <= to_timestamp(${now}::float8 / 1000) order by attribute_history.ts desc limit 20`),
  ).map((r) => r['QUERY PLAN']);
  await services.ingest.stop();
  return { total, page, deep, agg, agg2, plan };
}

/**
 * Alarm rules active during ingest (README "Alarms"; at most 10% slower is the budget). The devices get a type with `n` attribute rules
 * (none of them ever holds, so the cost measured is evaluation, not alarm writes) before the server
 * starts again.
 */
async function addRules(projectId: string, n: number) {
  const database = await openDb();
  const services = createServices({ db: database.db });
  const scope = { projectId };
  const type = await services.deviceTypes.create(scope, { name: 'bench sensor' });
  const conditions = [
    { kind: 'attribute' as const, identifier: 'temperature', op: '>' as const, value: 1000 },
    { kind: 'attribute' as const, identifier: 'humidity', op: 'outside' as const, min: -1, max: 101, for_seconds: 60 },
    { kind: 'attribute' as const, identifier: 'temperature', op: '<' as const, value: -1000, for_seconds: 30 },
    { kind: 'attribute' as const, identifier: 'switch', op: '==' as const, value: 'never' },
    { kind: 'attribute' as const, identifier: 'humidity', op: 'between' as const, min: 500, max: 600 },
  ];
  for (let i = 0; i < n; i++) {
    await services.alarms.rules.create(scope, {
      name: `bench rule ${i + 1}`,
      device_type_id: type.id,
      level: 1 + (i % 3),
      condition: conditions[i % conditions.length]!,
    });
  }
  await database.db.execute(sql`update devices set type_id = ${type.id} where project_id = ${projectId}`);
  await services.ingest.stop();
  await database.close();
}

/** A shape's runs, one per round each: ours (metrics off), bare Aedes, the DIY reference and its batch counts. */
interface ShapeRuns {
  shape: Shape;
  ours: LoadResult[];
  bare: LoadResult[];
  diy: LoadResult[];
  diyBatches: Array<NonNullable<ReturnType<typeof diyCounts>>>;
}

const median = (xs: number[]) => {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  const m = v.length >> 1;
  return !v.length ? Number.NaN : v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
};
const fmt = (v: number, d = 0) =>
  Number.isFinite(v) ? v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : '–';

let projectId: string | undefined;
const children: Child[] = [];
let pg: postgres.Sql | undefined;
/** Goals missed, one line each: printed after every figure, and the run exits 1 (as bench/http-api.ts). */
const missed: string[] = [];
/** Goals judged (a shape without a goal, or ours/DIY on PGlite, is not). */
let judged = 0;
try {
  console.log(
    `bench/ingest: driver=${databaseUrl ? 'postgres' : 'pglite'} shapes=${SHAPES.map((s) => s.name).join(',')} ` +
      `duration=${DURATION}s warmup=${WARMUP}s series-rows=${SERIES_ROWS} node=${process.version} cpus=${os.cpus().length}`,
  );
  if (!databaseUrl)
    console.log('DIY reference: skipped (it writes to PostgreSQL: set DATABASE_URL); ours/DIY is not judged');

  // 1. A project and N devices written straight into the database before the server starts.
  let database = await openDb();
  const project = await createServices({ db: database.db }).projects.create({
    name: `bench-ingest ${new Date().toISOString()} ${randomInt(1e9)}`,
  });
  projectId = project.id;
  const seeded = await seedMqttDevices(database.db, project.id, N);
  await database.db.execute(sql`analyze ${devices}`);
  const deviceIds = rowsOf<{ id: string }>(
    await database.db.execute(sql`select id from devices where project_id = ${project.id}`),
  ).map((r) => r.id);
  await database.close();
  const credentials = seeded.tokens.map((token) => ({ username: token, password: project.project_key }));
  pg = databaseUrl ? postgres(databaseUrl, { max: 1, onnotice: () => {} }) : undefined;
  if (pg) await createDiyTable(pg);
  const dbPids = async () =>
    pg
      ? (
          await pg<
            { pid: number }[]
          >`select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`
        ).map((r) => r.pid)
      : [];

  // 2–3. Per round and shape: our server, bare Aedes and the DIY reference under the same load, one after the
  // other, the order rotating (ours, bare, DIY; bare, DIY, ours; DIY, ours, bare; …) so that none always runs
  // first or last and each round's ratios cancel most of what else the machine is doing. Under the first shape
  // our server runs twice, with metrics off and on (scraped), in alternating order (off, on; on, off; …).
  const perShape: ShapeRuns[] = SHAPES.map((shape) => ({ shape, bare: [], ours: [], diy: [], diyBatches: [] }));
  /** Metrics-on runs (first shape), each with the metrics-off run of its round. */
  const metricsPairs: Array<{ on: LoadResult & { scraped?: ScrapeStats | undefined }; off: LoadResult }> = [];
  /** A metrics-on run outside any pair (paced: the one that probed /metrics first); its reports count as stored. */
  const unpaired: LoadResult[] = [];
  let metricsState: 'unknown' | 'on' | 'skipped' = METRICS_SCRAPE > 0 ? 'unknown' : 'skipped';
  const metricsToken = randomToken(32);
  const fleetOf = (shape: Shape) => credentials.slice(0, shape.devices);
  const label = (what: string, shape: Shape, r: number) => `${what} ${shape.name} ${r}/${ROUNDS}`;
  /** The metrics pair's load: paced at METRICS_RATE, or the shape's own closed loop. */
  const metricsDrive = (shape: Shape): Drive =>
    METRICS_RATE > 0 ? { rate: METRICS_RATE } : { inflight: shape.inflight };
  const pacedLabel = METRICS_RATE > 0 ? ` at ${METRICS_RATE}/s` : '';
  /** Our server with metrics on, scraped; undefined when /metrics is not there (the first time: says why). */
  const runWithMetrics = async (
    r: number,
    shape: Shape,
    fleet = fleetOf(shape),
  ): Promise<(LoadResult & { scraped?: ScrapeStats }) | undefined> => {
    if (metricsState === 'skipped') return undefined;
    const proc = await startOurServer(metricsToken);
    children.push(proc.child);
    if (metricsState === 'unknown') {
      const probe = await fetchMetrics(proc.base, metricsToken);
      const anonymous = await fetchMetrics(proc.base, undefined);
      if (probe.status !== 200) {
        console.log(
          probe.status === 404
            ? 'metrics: /metrics answered 404 (not built)'
            : `metrics: /metrics answered ${probe.status} with the token (metrics-on runs left out)`,
        );
        if (probe.status !== 404) problems.push(`/metrics answered ${probe.status} to its bearer token`);
        metricsState = 'skipped';
        await proc.child.stop(60_000);
        return undefined;
      }
      if (anonymous.status !== 401) problems.push(`/metrics answered ${anonymous.status} without a token (not 401)`);
      metricsState = 'on';
      console.log(
        `metrics: /metrics answers (${probe.body.split('\n').filter((l) => l && !l.startsWith('#')).length} series, ` +
          `${(probe.body.length / 1024).toFixed(1)} KiB); without a token ${anonymous.status}; scraped every ${METRICS_SCRAPE} s`,
      );
    }
    return run(
      label(`ours + metrics${pacedLabel}`, shape, r),
      proc,
      fleet,
      metricsDrive(shape),
      dbPids,
      scraper(proc.base, metricsToken, METRICS_SCRAPE),
    );
  };
  /**
   * Our server without metrics. As the metrics-off half of the pair (`scraped`), it is sent the same GET /metrics
   * as the other and answers 404: the pair then differs by the metrics only, not by whether the server has an HTTP
   * connection at all (bench/README "What the metrics cost, part by part").
   */
  const runWithout = async (
    r: number,
    shape: Shape,
    drive: Drive = { inflight: shape.inflight },
    fleet = fleetOf(shape),
    scraped = false,
  ) => {
    const proc = await startOurServer();
    children.push(proc.child);
    return run(
      label('inflight' in drive ? 'ours' : `ours${pacedLabel}`, shape, r),
      proc,
      fleet,
      drive,
      dbPids,
      scraped && METRICS_SCRAPE > 0 ? scraper(proc.base, metricsToken, METRICS_SCRAPE, 404) : undefined,
    );
  };
  /**
   * Paced, the two servers of the pair run at the same time, each with half of the shape's devices: whatever else
   * the machine does then weighs on both alike (bench/README "Metrics on and off, at a fixed rate"). Which server
   * is started first alternates by round and the halves swap every two rounds, so that neither the order nor a
   * half of the fleet favours one side (fully balanced when the rounds are a multiple of 4).
   */
  const pacedPair = async (r: number, shape: Shape) => {
    const all = fleetOf(shape);
    const halves = [all.slice(0, all.length >> 1), all.slice(all.length >> 1)];
    const [onFleet, offFleet] = Math.floor((r - 1) / 2) % 2 === 0 ? halves : [halves[1]!, halves[0]!];
    // The first probe of /metrics decides whether there is a pair at all.
    if (metricsState === 'unknown') return runWithMetrics(r, shape, onFleet).then((on) => ({ on, off: undefined }));
    const startOn = () => runWithMetrics(r, shape, onFleet);
    const startOff = () => runWithout(r, shape, metricsDrive(shape), offFleet, true);
    if (r % 2 === 1) {
      const [on, off] = await Promise.all([startOn(), startOff()]);
      return { on, off };
    }
    const [off, on] = await Promise.all([startOff(), startOn()]);
    return { on, off };
  };
  const runOurs = async (r: number, k: number, runs: ShapeRuns) => {
    // Paced, the metrics-off run of the pair is not the shape's own run: that one runs as well.
    if (k > 0 || METRICS_RATE > 0 || metricsState === 'skipped') runs.ours.push(await runWithout(r, runs.shape));
    if (k > 0 || metricsState === 'skipped') return;
    if (METRICS_RATE > 0) {
      let pair = await pacedPair(r, runs.shape);
      // The first round's probe ran alone: the pair runs now.
      if (!pair.off && pair.on) {
        unpaired.push(pair.on);
        pair = await pacedPair(r, runs.shape);
      }
      if (pair.on && pair.off) metricsPairs.push({ on: pair.on, off: pair.off });
      return;
    }
    let on: (LoadResult & { scraped?: ScrapeStats }) | undefined;
    let off: LoadResult;
    if (r % 2 === 1) {
      off = await runWithout(r, runs.shape, metricsDrive(runs.shape), undefined, true);
      on = await runWithMetrics(r, runs.shape);
    } else {
      on = await runWithMetrics(r, runs.shape);
      off = await runWithout(r, runs.shape, metricsDrive(runs.shape), undefined, true);
    }
    runs.ours.push(off);
    if (on) metricsPairs.push({ on, off });
  };
  const runBare = async (r: number, runs: ShapeRuns) => {
    const proc = await startBare('bare', tmp, cpuProfOf('bare'));
    children.push(proc.child);
    runs.bare.push(
      await run(
        label('bare', runs.shape, r),
        proc,
        fleetOf(runs.shape),
        { inflight: runs.shape.inflight },
        async () => [],
      ),
    );
  };
  const runDiy = async (r: number, runs: ShapeRuns, url: string) => {
    const proc = await startDiy('diy', tmp, url, cpuProfOf('diy'));
    children.push(proc.child);
    runs.diy.push(
      await run(label('DIY', runs.shape, r), proc, fleetOf(runs.shape), { inflight: runs.shape.inflight }, dbPids),
    );
    const batches = diyCounts(readFileSync(proc.child.logFile, 'utf8'));
    if (!batches) problems.push(`${label('DIY', runs.shape, r)}: printed no batch counts when it stopped`);
    else runs.diyBatches.push(batches);
  };
  for (let r = 1; r <= ROUNDS; r++) {
    for (const [k, runs] of perShape.entries()) {
      const kinds = databaseUrl ? (['ours', 'bare', 'diy'] as const) : (['ours', 'bare'] as const);
      const shift = (r - 1 + k) % kinds.length;
      for (const kind of [...kinds.slice(shift), ...kinds.slice(0, shift)]) {
        if (kind === 'ours') await runOurs(r, k, runs);
        else if (kind === 'bare') await runBare(r, runs);
        else await runDiy(r, runs, databaseUrl!);
      }
    }
  }
  let withRules: LoadResult | undefined;
  const first = SHAPES[0]!;
  if (RULES > 0) {
    await addRules(project.id, RULES);
    const again = await startOurServer();
    children.push(again.child);
    withRules = await run(
      `ours + ${RULES} alarm rules ${first.name}`,
      again,
      fleetOf(first),
      { inflight: first.inflight },
      dbPids,
    );
  }

  // 4. What was stored: every acknowledged report, 3 values each, exactly once (ours, and the DIY reference's).
  database = await openDb();
  const count = async (q: ReturnType<typeof sql>) =>
    Number(rowsOf<{ n: string | number }>(await database.db.execute(q))[0]!.n);
  const stored = await count(sql`select count(*) as n from attribute_history where project_id = ${project.id}`);
  const sumAcked = (runs: LoadResult[]) => runs.reduce((n, r) => n + r.totalAcked, 0);
  const ackedAll =
    sumAcked(perShape.flatMap((s) => s.ours)) +
    sumAcked(metricsPairs.map((p) => p.on)) +
    // Paced, the pair's metrics-off run is a run of its own (closed loop, it is the shape's run, counted above).
    (METRICS_RATE > 0 ? sumAcked(metricsPairs.map((p) => p.off)) : 0) +
    sumAcked(unpaired) +
    (withRules?.totalAcked ?? 0);
  const windowMs = (r: LoadResult) => r.windowEnd - r.windowStart;
  /** Values stored per second with their time in each run's timed window. */
  const storedPerS = new Map<LoadResult, number>();
  for (const r of perShape.flatMap((s) => s.ours)) {
    const inWindow = await count(sql`select count(*) as n from attribute_history where project_id = ${project.id}
      and ts >= timestamptz 'epoch' + ${r.windowStart}::int8 * interval '1 millisecond' and ts < timestamptz 'epoch' + ${r.windowEnd}::int8 * interval '1 millisecond'`);
    storedPerS.set(r, inWindow / (windowMs(r) / 1000));
  }
  if (pg)
    for (const r of perShape.flatMap((s) => s.diy))
      storedPerS.set(r, (await countDiyRows(pg, r.windowStart, r.windowEnd)) / (windowMs(r) / 1000));
  const current = await count(sql`select count(*) as n from attribute_values where project_id = ${project.id}`);
  const ratioStored = stored / (3 * ackedAll);
  if (stored !== 3 * ackedAll)
    problems.push(`stored ${stored} values for ${ackedAll} acknowledged reports (expected ${3 * ackedAll})`);
  if (current !== 3 * N) problems.push(`${current} current values, expected ${3 * N}`);
  const diyAcked = sumAcked(perShape.flatMap((s) => s.diy));
  const diyStored = pg ? await countDiyRows(pg) : 0;
  if (pg && diyStored !== 3 * diyAcked)
    problems.push(`DIY: stored ${diyStored} values for ${diyAcked} acknowledged reports (expected ${3 * diyAcked})`);

  const rate = (r: LoadResult) => r.timedAcked / (windowMs(r) / 1000);
  /** % of one core over the timed window. */
  const pct = (r: LoadResult, ms: number) => (100 * ms) / windowMs(r);
  const med = (runs: LoadResult[], f: (r: LoadResult) => number) => median(runs.map(f));
  const cores = os.cpus().length;
  const p = (q: number) => (r: LoadResult) => percentile(r.latencies, q);
  const cpu = (r: LoadResult) => r.brokerCpuMs / r.timedAcked;
  /** The rows of a shape's table: label, the figure of a run, its decimals, and how ratios are taken. */
  const metrics: Array<{ label: string; f: (r: LoadResult) => number; d?: number; ratios?: boolean }> = [
    { label: 'values/s stored (timed window)', f: (r) => storedPerS.get(r) ?? 0 },
    { label: 'ack latency p50 (ms)', f: p(50), d: 1, ratios: true },
    { label: 'ack latency p99 (ms)', f: p(99), d: 1, ratios: true },
    { label: 'broker CPU (% of one core)', f: (r) => pct(r, r.brokerCpuMs) },
    { label: 'database CPU (% of one core)', f: (r) => pct(r, r.dbCpuMs) },
    { label: 'load generator CPU (% of one core)', f: (r) => pct(r, r.loadCpuMs) },
    { label: `machine CPU busy (% of ${cores} cores)`, f: (r) => pct(r, r.machineMs) / cores },
    { label: 'broker CPU per report (ms)', f: cpu, d: 3, ratios: true },
    { label: 'database CPU per report (ms)', f: (r) => r.dbCpuMs / r.timedAcked, d: 3, ratios: true },
    // What the machine's two cores pay per report apart from the load generator: on a saturated machine the
    // steadier figure of the three (bare has no database).
    {
      label: 'broker + database CPU per report (ms)',
      f: (r) => (r.brokerCpuMs + (Number.isFinite(r.dbCpuMs) ? r.dbCpuMs : 0)) / r.timedAcked,
      d: 3,
      ratios: true,
    },
  ];
  const ratioOf = (a: number, b: number) => (Number.isFinite(a / b) ? (a / b).toFixed(2) : '');
  const summary: string[][] = [];
  for (const { shape, ours, bare, diy, diyBatches } of perShape) {
    const byRound = (others: LoadResult[]) => ours.map((o, i) => (others[i] ? rate(o) / rate(others[i]) : Number.NaN));
    const vsBare = byRound(bare);
    const vsDiy = byRound(diy);
    console.log(
      `\n${shape.name} rounds (reports/s ours / bare${diy.length ? ' / DIY' : ''}): ` +
        ours
          .map((o, i) =>
            [o, bare[i], diy[i]]
              .filter((x): x is LoadResult => x !== undefined)
              .map((x) => fmt(rate(x)))
              .join(' / '),
          )
          .join('; '),
    );
    const rows: string[][] = [
      [
        'reports/s acknowledged',
        fmt(med(ours, rate)),
        fmt(med(bare, rate)),
        diy.length ? fmt(med(diy, rate)) : 'skipped',
        median(vsBare).toFixed(2),
        diy.length ? median(vsDiy).toFixed(2) : '',
      ],
      ...metrics.map((m) => {
        const [o, b, d] = [med(ours, m.f), med(bare, m.f), med(diy, m.f)];
        return [
          m.label,
          fmt(o, m.d),
          fmt(b, m.d),
          fmt(d, m.d),
          m.ratios ? ratioOf(o, b) : '',
          m.ratios ? ratioOf(o, d) : '',
        ];
      }),
      [
        'RSS peak / end (MiB)',
        ...[ours, bare, diy].map((runs) =>
          runs.length ? `${fmt(med(runs, (r) => r.rssPeak) / MiB)} / ${fmt(med(runs, (r) => r.rssEnd) / MiB)}` : '',
        ),
        '',
        '',
      ],
      [
        'reports per INSERT (mean / max)',
        '',
        '',
        diyBatches.length
          ? `${fmt(median(diyBatches.map((b) => b.reports / b.batches)))} / ${fmt(Math.max(...diyBatches.map((b) => b.maxReports)))}`
          : '',
        '',
        '',
      ],
    ];
    console.log('');
    const widths = [36, 14, 14, 14, 11, 10];
    const line = (cells: string[]) => cells.map((c, i) => (i ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('');
    console.log(
      line([
        `${shape.name}, median of ${ROUNDS} round${ROUNDS > 1 ? 's' : ''}`,
        'ours',
        'bare Aedes',
        'DIY',
        'ours/bare',
        'ours/DIY',
      ]),
    );
    for (const row of rows) console.log(line(row));

    // The goals, judged on the figures as printed (ratios to 2 decimals).
    const judge = (what: string, ratios: number[], goal: number | undefined) => {
      const value = median(ratios).toFixed(2);
      if (goal === undefined) return `${value} (no goal)`;
      judged++;
      const ok = Number(value) >= goal;
      if (!ok)
        missed.push(`${shape.name}: ${what} ${value} < ${goal} (rounds ${ratios.map((x) => x.toFixed(2)).join(', ')})`);
      return `${value} ≥ ${goal} ${ok ? 'ok' : 'MISS'}`;
    };
    summary.push([
      shape.name,
      fmt(med(ours, rate)),
      fmt(med(bare, rate)),
      diy.length ? fmt(med(diy, rate)) : 'skipped',
      judge('ours/bare', vsBare, BARE_GOALS[shape.name]),
      diy.length ? judge('ours/DIY', vsDiy, DIY_GOAL) : 'skipped (PGlite)',
    ]);
  }
  if (withRules) {
    // Against the median of the rounds without rules (one run moves ±20%: CPU per report is the steadier figure).
    const withoutRuns = perShape[0]!.ours;
    const rateWithout = med(withoutRuns, rate);
    const cpuWithout = med(withoutRuns, cpu);
    const cpuWith = cpu(withRules);
    const slower = 1 - rate(withRules) / rateWithout;
    console.log(
      `\nwith ${RULES} alarm rules per type (devices typed, ${first.name}): ${fmt(rate(withRules))} reports/s, p50 ${percentile(withRules.latencies, 50).toFixed(1)} ms, ` +
        `p99 ${percentile(withRules.latencies, 99).toFixed(1)} ms: ${(100 * Math.abs(slower)).toFixed(1)}% ${slower >= 0 ? 'slower' : 'faster'} than the median without; ` +
        `broker CPU per report ${cpuWith.toFixed(3)} ms vs ${cpuWithout.toFixed(3)} ms (${(100 * (cpuWith / cpuWithout - 1)).toFixed(1)}%; the budget is 10% slower)`,
    );
  }
  if (metricsPairs.length) {
    // Broker CPU per report, metrics on against off in the same round (the steadier figure; the rate moves ±20%).
    const cpuOn = median(metricsPairs.map((p) => cpu(p.on)));
    const cpuOff = median(metricsPairs.map((p) => cpu(p.off)));
    const pairRatios = metricsPairs.map((p) => cpu(p.on) / cpu(p.off));
    const ratio = median(pairRatios);
    const scrapes = metricsPairs.flatMap((p) => (p.on.scraped ? [p.on.scraped] : []));
    const scrapeMs = Float64Array.from(scrapes.flatMap((s) => s.ms)).sort();
    const nScrapes = scrapes.reduce((n, s) => n + s.scrapes, 0);
    const last = scrapes.at(-1)?.last ?? '';
    console.log(
      `\nmetrics on (${first.name}${METRICS_RATE > 0 ? `, paced at ${fmt(METRICS_RATE)} reports/s` : ', closed loop'}, GET /metrics every ${METRICS_SCRAPE} s, ${nScrapes} scrapes, ${(scrapes.reduce((n, s) => n + s.bytes, 0) / Math.max(1, nScrapes) / 1024).toFixed(1)} KiB each, ` +
        `p50 ${percentile(scrapeMs, 50).toFixed(1)} ms) vs off, ${metricsPairs.length} round${metricsPairs.length > 1 ? 's' : ''}:\n` +
        `  broker CPU per report: on ${cpuOn.toFixed(4)} ms / off ${cpuOff.toFixed(4)} ms; on/off ${ratio.toFixed(3)} ` +
        `(median of the rounds' ratios ${pairRatios.map((x) => x.toFixed(3)).join(', ')}); goal ≤ ${METRICS_CPU_GOAL.toFixed(2)}: ` +
        `${ratio <= METRICS_CPU_GOAL ? 'met' : 'NOT met'}\n` +
        `  reports/s on ${fmt(median(metricsPairs.map((p) => rate(p.on))))} / off ${fmt(median(metricsPairs.map((p) => rate(p.off))))}; ` +
        `the last scrape counted ${fmt(sampleOf(last, 'iot_ingest_values_total'))} values written, ${fmt(sampleOf(last, 'iot_ingest_batches_total'))} batches`,
    );
  }
  console.log(
    `\nall reports: ours ${ackedAll} acknowledged (warm-up and drain included, every run), ${stored} values stored ` +
      `(stored / acknowledged ${ratioStored.toFixed(4)}), ${current} current values` +
      (pg
        ? `; DIY ${diyAcked} acknowledged, ${diyStored} values stored (${(diyStored / (3 * diyAcked)).toFixed(4)})`
        : ''),
  );
  console.log(
    `\ngoals (reports/s: median of the rounds; ratios: median of the rounds' ratios; ours/bare ≥ ${Object.entries(
      BARE_GOALS,
    )
      .map(([s, g]) => `${g} at ${s}`)
      .join(', ')}; ours/DIY ≥ ${DIY_GOAL} at every shape)`,
  );
  const goalWidths = [10, 10, 10, 10, 22, 22];
  for (const row of [['shape', 'ours', 'bare', 'DIY', 'ours/bare', 'ours/DIY'], ...summary])
    console.log(row.map((c, i) => (i ? c.padStart(goalWidths[i]!) : c.padEnd(goalWidths[i]!))).join(''));

  // 5. Series speed over a large history.
  if (SERIES_ROWS > 0) {
    const s = await seriesSpeed(database, project.id, deviceIds, SERIES_ROWS);
    console.log(`[series] page 1 (20 rows): p50 ${s.page.p50.toFixed(2)} ms, p99 ${s.page.p99.toFixed(2)} ms`);
    console.log(`[series] page 10 (100 rows): p50 ${s.deep.p50.toFixed(2)} ms, p99 ${s.deep.p99.toFixed(2)} ms`);
    console.log(
      `[series] one day hourly avg, 1 identifier: p50 ${s.agg.p50.toFixed(2)} ms, p99 ${s.agg.p99.toFixed(2)} ms`,
    );
    console.log(
      `[series] one day hourly max, 2 identifiers: p50 ${s.agg2.p50.toFixed(2)} ms, p99 ${s.agg2.p99.toFixed(2)} ms`,
    );
    console.log(`[series] plan of a page:\n  ${s.plan.join('\n  ')}`);
  }
  await database.close();
} catch (err) {
  problems.push(`run aborted: ${(err as Error).stack ?? String(err)}`);
} finally {
  for (const child of children) if (child.alive()) await child.stop(10_000);
  if (pg) await dropDiyTable(pg).catch((err: Error) => problems.push(`cleanup: ${err.message}`));
  await pg?.end({ timeout: 5 }).catch(() => {});
  if (databaseUrl && projectId) {
    try {
      const database = await openDb();
      await forgetBenchProject(database.db, projectId);
      await database.close();
    } catch (err) {
      problems.push(`cleanup: ${(err as Error).message}`);
    }
  }
}

// Every figure is printed: now the goals missed, a line each, and a failed run (exit 1).
reportMissedGoals(missed, problems, 'all checks passed, but not the goals');
if (!missed.length && !problems.length) console.log(judged ? `\ngoals met (${judged})` : '\nno goal judged');
frame.finish(problems);
