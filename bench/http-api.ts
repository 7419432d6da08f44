/**
 * bench/http-api — the device list, device read and stats routes with 100,000 devices in one
 * project, against the same server's trivial /health route in the same run (the ratio is the
 * figure: it cancels out how fast this particular machine is). The device read and the first list page
 * have goals (GOALS below): the run prints every figure, then fails with a line per missed goal.
 * See bench/README.md.
 *
 *   npm run bench:http-api -- [--devices 100000] [--duration 10] [--connections 10] [--warmup 1] [--vacuum]
 *                              [--pairs 4] [--pair-duration 3]
 *   DATABASE_URL=postgres://... npm run bench:http-api      # PostgreSQL instead of embedded PGlite
 */
import { randomInt } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { pino } from 'pino';
import { buildApp } from '../src/app.ts';
import { createDevicesRepository } from '../src/db/repositories/devices.repository.ts';
import { rowsOf } from '../src/db/client.ts';
import { openDatabase } from '../src/db/open.ts';
import { createServices } from '../src/composition/services.ts';
import { captureSelects, countingDb, explain } from './lib/explain.ts';
import { load, type LoadResult } from './lib/load.ts';
import { cpuBetween, cpuByPid, localPortsTo, machineBusyMs, threadCpuMs } from './lib/mqtt-proc.ts';
import { pairedRatios, pairedSchedule, type PairedRatio } from './lib/paired.ts';
import { analyze, seedProject } from './lib/seed.ts';
import { benchArgs, intArg as benchInt } from './lib/args.ts';

const args = benchArgs('http-api', {
  devices: { type: 'string', default: '100000' },
  duration: { type: 'string', default: '10' },
  connections: { type: 'string', default: '10' },
  warmup: { type: 'string', default: '1' },
  vacuum: { type: 'boolean', default: false },
  pairs: { type: 'string', default: '4' },
  'pair-duration': { type: 'string', default: '3' },
});
const intArg = (name: string, raw: string | undefined, min: number, max: number) =>
  benchInt('http-api', name, raw, min, max);
const N = intArg('devices', args.devices, 1, 2_000_000);
const DURATION = intArg('duration', args.duration, 1, 120);
const CONNECTIONS = intArg('connections', args.connections, 1, 200);
const WARMUP = intArg('warmup', args.warmup, 0, 30);
/** Rounds of alternating /health and goal-route windows (bench/lib/paired.ts); 0 = judge on the table's ratio. */
const PAIRS = intArg('pairs', args.pairs, 0, 20);
const PAIR_DURATION = intArg('pair-duration', args['pair-duration'], 1, 60);
const PAGE_RECORDS = 20; // the list's default page_records (http-api.md §3)
const DEEP_PAGE = Math.max(1, Math.min(2000, Math.ceil(N / PAGE_RECORDS)));

/**
 * What the hottest routes must reach: req/s over /health's (the "vs /health" column) at least
 * `minRatio`, and autocannon's p99 at most `maxP99Ms`. A miss fails the run once every figure is printed.
 */
const GOALS: Record<string, { minRatio: number; maxP99Ms: number }> = {
  'GET /api/v1/device/:id': { minRatio: 0.15, maxP99Ms: 10 },
  'GET /api/v1/devices': { minRatio: 0.08, maxP99Ms: 15 },
};

// The whole run is bounded: a stuck database or server must not hold the machine.
const watchdog = setTimeout(() => {
  console.error('bench/http-api: gave up after 30 minutes');
  process.exit(1);
}, 30 * 60_000);
watchdog.unref();

const log = pino({ level: 'warn' });
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'bench-http-api-'));
const database = await openDatabase({ DATA_DIR: dataDir, DATABASE_URL: process.env.DATABASE_URL }, log).catch(
  (err: unknown) => {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  },
);
const counter = countingDb(database.db);
const services = createServices({ db: counter.db });
const app = await buildApp({
  config: {
    BODY_LIMIT: 1024 * 1024,
    LOGIN_RATE_LIMIT: 1_000_000,
    LOGIN_RATE_WINDOW_MS: 60_000,
    PLATFORM_TOKEN: undefined,
    TRUST_PROXY: false,
  },
  services,
  jwtSecret: `bench-${Date.now()}-jwt-secret-0123456789abcdef`,
  logger: false,
});
let projectId: string | undefined;

/** Mean duration of `call` run one at a time for about a second (at most 2,000 calls). */
async function meanMs(call: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 5; i++) await call();
  const started = performance.now();
  let n = 0;
  while (n < 2000 && performance.now() - started < 1000) {
    await call();
    n++;
  }
  return (performance.now() - started) / n;
}

async function json(res: Response) {
  const body = (await res.json()) as { result: boolean; info?: Record<string, unknown> };
  if (res.status !== 200 || !body.result)
    throw new Error(`${res.url}: HTTP ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
  return body.info ?? {};
}

try {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  console.log(
    `bench/http-api: driver=${database.driver} devices=${N} duration=${DURATION}s connections=${CONNECTIONS} node=${process.version} cpus=${os.cpus().length}`,
  );

  // A uniquely-named project, so reruns against one PostgreSQL database never collide.
  const project = await services.projects.create({
    name: `bench-http-api ${new Date().toISOString()} ${randomInt(1e9)}`,
  });
  projectId = project.id;
  const token = String(
    (
      await json(
        await fetch(`${base}/api/v1/access_token`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(project.app),
        }),
      )
    ).access_token,
  );

  const seeded = await seedProject(database.db, project.id, { devices: N });
  console.log(
    `seeded ${N} devices (+${seeded.memberships} group memberships) in ${(seeded.ms / 1000).toFixed(1)} s (${Math.round(N / (seeded.ms / 1000))} devices/s)`,
  );
  const analyzeMs = await analyze(database.db, args.vacuum);
  console.log(`${args.vacuum ? 'VACUUM (ANALYZE)' : 'ANALYZE'} took ${(analyzeMs / 1000).toFixed(1)} s`);

  const typeId = seeded.typeIds[0] ?? '';
  const headers = { authorization: `Bearer ${token}` };
  // Keyset paging to the deep page: after the last device of the page before it, so `?after=` lists
  // the same 20 devices as `?page=DEEP_PAGE` (checked below). With one page only, after its first device.
  const beforeDeep = (await json(
    await fetch(`${base}/api/v1/devices?page=${Math.max(1, DEEP_PAGE - 1)}`, { headers }),
  )) as { items: { id: string }[] };
  const afterId = (DEEP_PAGE > 1 ? beforeDeep.items.at(-1) : beforeDeep.items[0])?.id ?? '';
  const AFTER = `GET /api/v1/devices?after=<id at offset ${(DEEP_PAGE - 1) * PAGE_RECORDS}>`;
  // 1,000 random existing devices, read in turn by every connection.
  const readIds = Array.from({ length: Math.min(1000, N) }, () => seeded.deviceIds[randomInt(N)] ?? '');
  const routes: { name: string; paths: string[]; auth: boolean }[] = [
    { name: 'GET /health', paths: ['/health'], auth: false },
    { name: 'GET /api/v1/devices', paths: ['/api/v1/devices'], auth: true },
    { name: `GET /api/v1/devices?page=${DEEP_PAGE}`, paths: [`/api/v1/devices?page=${DEEP_PAGE}`], auth: true },
    { name: AFTER, paths: [`/api/v1/devices?after=${afterId}`], auth: true },
    { name: 'GET /api/v1/devices?type=<type>', paths: [`/api/v1/devices?type=${typeId}`], auth: true },
    { name: 'GET /api/v1/device/:id', paths: readIds.map((id) => `/api/v1/device/${id}`), auth: true },
    { name: 'GET /api/v1/devices_stat', paths: ['/api/v1/devices_stat'], auth: true },
    { name: 'GET /health (again)', paths: ['/health'], auth: false },
  ];

  // Every route answers a real success before it is timed (a business failure is HTTP 200 too),
  // and its statement count shows there is no per-row query.
  const statements: Record<string, number> = {};
  for (const r of routes) {
    for (const p of new Set(r.paths.slice(0, 3))) await json(await fetch(base + p, r.auth ? { headers } : {}));
    const before = counter.count();
    await json(await fetch(base + r.paths[0], r.auth ? { headers } : {}));
    statements[r.name] = counter.count() - before;
  }
  const first = await json(await fetch(`${base}/api/v1/devices`, { headers }));
  const deep = await json(await fetch(`${base}/api/v1/devices?page=${DEEP_PAGE}`, { headers }));
  const keyset = await json(await fetch(`${base}/api/v1/devices?after=${afterId}`, { headers }));
  const byType = await json(await fetch(`${base}/api/v1/devices?type=${typeId}`, { headers }));
  const stat = await json(await fetch(`${base}/api/v1/devices_stat`, { headers }));
  const before500 = counter.count();
  const big = await json(await fetch(`${base}/api/v1/devices?page_records=500`, { headers }));
  const statements500 = counter.count() - before500;
  if (
    first.total !== N ||
    (first.items as unknown[]).length !== Math.min(PAGE_RECORDS, N) ||
    (big.items as unknown[]).length !== Math.min(500, N)
  ) {
    throw new Error(`unexpected list: total=${String(first.total)}`);
  }
  if ((deep.items as unknown[]).length === 0) throw new Error(`page ${DEEP_PAGE} is empty`);
  const idsOf = (info: Record<string, unknown>) => (info.items as { id: string }[]).map((d) => d.id).join(',');
  if (DEEP_PAGE > 1 && idsOf(keyset) !== idsOf(deep))
    throw new Error(`?after=${afterId} does not list the devices of ?page=${DEEP_PAGE}`);
  console.log(`devices_stat: ${JSON.stringify(stat)}; type filter matches ${String(byType.total)} devices`);

  const results = new Map<string, LoadResult>();
  /** CPU of the server's thread (this process's main thread; the load generator has its own) per answer, µs. */
  const serverUs = new Map<string, number>();
  /** CPU of the PostgreSQL backends serving this process per answer, µs (PostgreSQL only: PGlite runs in the server thread). */
  const databaseUs = new Map<string, number>();
  // The backends are found by the local ports of this process's own connections (pg_stat_activity's client_port),
  // and only when they are processes of this machine named postgres: a server in a container or elsewhere
  // has other process ids, and the column then shows `-`.
  const pgPort = Number(new URL(process.env.DATABASE_URL ?? 'postgres://x').port || 5432);
  const databasePids = async (): Promise<number[]> => {
    if (database.driver !== 'postgres') return [];
    const ports = [...localPortsTo(process.pid, pgPort)];
    if (!ports.length) return [];
    const rows = rowsOf<{ pid: number }>(
      await database.db.execute(
        sql`select pid from pg_stat_activity where client_port = any(string_to_array(${ports.join(',')}, ',')::int[])`,
      ),
    );
    const pids = rows.map((r) => Number(r.pid));
    const local = (pid: number) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres';
      } catch {
        return false;
      }
    };
    return pids.every(local) ? pids : [];
  };
  /** Share of all cores busy (every process of the machine) while the route was loaded. */
  const machineBusy = new Map<string, number>();
  for (const r of routes) {
    const opts = { url: base, paths: r.paths, connections: CONNECTIONS, ...(r.auth ? { token } : {}) };
    if (WARMUP) await load({ ...opts, durationS: WARMUP });
    const pids = await databasePids();
    const dbBefore = cpuByPid(pids);
    const cpuBefore = threadCpuMs(process.pid, process.pid);
    const busyBefore = machineBusyMs();
    const startedAt = performance.now();
    const res = await load({ ...opts, durationS: DURATION });
    const cpu = threadCpuMs(process.pid, process.pid) - cpuBefore;
    machineBusy.set(r.name, (machineBusyMs() - busyBefore) / (performance.now() - startedAt) / os.cpus().length);
    if (res.non2xx || res.errors) throw new Error(`${r.name}: ${res.non2xx} non-2xx answers, ${res.errors} errors`);
    results.set(r.name, res);
    serverUs.set(r.name, res.requests ? (cpu * 1000) / res.requests : 0);
    // Backends opened during the run count from zero (cpuBetween); the list is read again for them.
    const pidsAfter = [...new Set([...pids, ...(await databasePids())])];
    if (pidsAfter.length)
      databaseUs.set(r.name, res.requests ? (cpuBetween(dbBefore, cpuByPid(pidsAfter)) * 1000) / res.requests : 0);
    console.log(`  measured ${r.name}: ${res.rps.toFixed(0)} req/s`);
  }

  // The goal routes again, each window between two /health windows (bench/lib/paired.ts): their ratios are
  // judged on these, which a drift of /health over the run (10-30% from its first to its last run) does not move.
  const paired = new Map<string, PairedRatio>();
  if (PAIRS) {
    const byName = new Map(routes.map((r) => [r.name, r]));
    const windows: { name: string; rps: number }[] = [];
    for (const name of pairedSchedule('GET /health', Object.keys(GOALS), PAIRS)) {
      const r = byName.get(name)!;
      const opts = { url: base, paths: r.paths, connections: CONNECTIONS, ...(r.auth ? { token } : {}) };
      // A second untimed first: what the previous window left (its garbage, its JIT work) does not fall in this one.
      await load({ ...opts, durationS: 1 });
      const res = await load({ ...opts, durationS: PAIR_DURATION });
      if (res.non2xx || res.errors) throw new Error(`${name}: ${res.non2xx} non-2xx answers, ${res.errors} errors`);
      windows.push({ name, rps: res.rps });
    }
    for (const [name, ratio] of pairedRatios('GET /health', windows)) paired.set(name, ratio);
    console.log(
      `  paired windows (${PAIR_DURATION} s each): ${windows.map((w) => `${w.name.replace('GET ', '')} ${w.rps.toFixed(0)}`).join(', ')}`,
    );
  }

  // The same service calls without HTTP (one at a time): how much of a request is the database.
  const scope = { projectId: project.id };
  const direct: Record<string, () => Promise<unknown>> = {
    'GET /api/v1/devices': () => services.devices.list(scope, {}, 1, PAGE_RECORDS),
    [`GET /api/v1/devices?page=${DEEP_PAGE}`]: () => services.devices.list(scope, {}, DEEP_PAGE, PAGE_RECORDS),
    [AFTER]: () => services.devices.list(scope, {}, 1, PAGE_RECORDS, afterId),
    'GET /api/v1/devices?type=<type>': () => services.devices.list(scope, { typeId }, 1, PAGE_RECORDS),
    'GET /api/v1/device/:id': (() => {
      let i = 0;
      return () => services.devices.get(scope, readIds[i++ % readIds.length] ?? '');
    })(),
    'GET /api/v1/devices_stat': () => services.devices.stat(scope),
  };
  const serviceMs: Record<string, number> = {};
  for (const [name, call] of Object.entries(direct)) serviceMs[name] = await meanMs(call);

  const healthRps = ((results.get('GET /health')?.rps ?? 0) + (results.get('GET /health (again)')?.rps ?? 0)) / 2;
  const missed: string[] = [];
  const table = routes.map((r) => {
    const m = results.get(r.name)!;
    const ratio = (m.rps / healthRps).toFixed(3);
    const pair = paired.get(r.name);
    const pairedText = pair ? `${pair.median.toFixed(3)} (${pair.min.toFixed(3)}-${pair.max.toFixed(3)})` : '-';
    const goal = GOALS[r.name];
    let verdict = '-';
    if (goal) {
      // Judged on the figures as printed (the ratio to 3 decimals, p99 in whole ms): the paired median when
      // there are paired windows, the table's ratio otherwise.
      const judged = pair ? pair.median.toFixed(3) : ratio;
      const misses = [
        ...(Number(judged) < goal.minRatio ? [`vs /health ${judged} < ${goal.minRatio}`] : []),
        ...(m.p99 > goal.maxP99Ms ? [`p99 ${m.p99} ms > ${goal.maxP99Ms} ms`] : []),
      ];
      missed.push(...misses.map((miss) => `${r.name}: ${miss}`));
      verdict = `${misses.length ? 'MISS' : 'ok'} (≥${goal.minRatio}, p99≤${goal.maxP99Ms})`;
    }
    return {
      route: r.name,
      'req/s': m.rps.toFixed(0),
      'p50 ms': m.p50,
      'p99 ms': m.p99,
      'mean ms': m.mean.toFixed(2),
      'server µs': serverUs.get(r.name)?.toFixed(0) ?? '-',
      'database µs': databaseUs.get(r.name)?.toFixed(0) ?? '-',
      'machine %': ((machineBusy.get(r.name) ?? 0) * 100).toFixed(0),
      'vs /health': ratio,
      paired: pairedText,
      goal: verdict,
      'service ms': serviceMs[r.name]?.toFixed(2) ?? '-',
      statements: statements[r.name] ?? 0,
    };
  });
  console.log(
    `\nresults (driver=${database.driver}, ${N} devices, ${DURATION} s per route, ${CONNECTIONS} connections)`,
  );
  console.log(
    '"vs /health" = req/s over the mean req/s of both /health runs; "server µs" = CPU of the server main thread per answer (not its GC helper threads; on PGlite the database too; the load generator runs in a thread of its own); "database µs" = CPU of the PostgreSQL backends of the server connections per answer; "machine %" = share of all cores busy meanwhile; "paired" = median (min-max) of the route\'s short windows, each over the /health windows either side of it (the goals are judged on it); "service ms" = the service call alone, without HTTP, one at a time',
  );
  console.table(table);
  console.log(
    `statements per request: list=${statements['GET /api/v1/devices']} at page_records=20, ${statements500} at page_records=500 (constant = no N+1)`,
  );

  // The SQL the repositories actually send, captured and EXPLAINed on the seeded data.
  const repo = (db: typeof database.db) => createDevicesRepository(db);
  const sample = readIds[0] ?? '';
  const queries: { name: string; run: (r: ReturnType<typeof repo>) => Promise<unknown> }[] = [
    { name: 'list page 1 (rows)', run: (r) => r.page(scope, {}, PAGE_RECORDS, 0) },
    {
      name: `list page ${DEEP_PAGE} (rows)`,
      run: (r) => r.page(scope, {}, PAGE_RECORDS, (DEEP_PAGE - 1) * PAGE_RECORDS),
    },
    { name: `list after ${afterId} (keyset)`, run: (r) => r.page(scope, {}, PAGE_RECORDS, 0, afterId) },
    { name: 'list by type (rows)', run: (r) => r.page(scope, { typeId }, PAGE_RECORDS, 0) },
    { name: 'list total (count, cached for 2 s by the service)', run: (r) => r.total(scope, {}) },
    { name: 'read (device with its groups, one statement)', run: (r) => r.getDetail(scope, sample) },
    { name: 'devices_stat', run: (r) => r.stats(scope) },
  ];
  console.log('\nEXPLAIN (ANALYZE, BUFFERS) of the repository queries:');
  const seqScans: string[] = [];
  for (const q of queries) {
    const captured = await captureSelects(database.db, (db) => q.run(repo(db)));
    for (const [i, query] of captured.entries()) {
      const plan = await explain(database.db, query);
      seqScans.push(...plan.seqScans.map((t) => `${q.name}: seq scan on ${t}`));
      console.log(
        `\n[${q.name}] statement ${i + 1}/${captured.length}: execution ${plan.executionMs.toFixed(3)} ms, planning ${plan.planningMs.toFixed(3)} ms`,
      );
      for (const line of plan.lines) console.log(`  ${line}`);
    }
  }
  console.log(
    seqScans.length
      ? `\nSEQ SCANS over 1,000+ rows: ${seqScans.join('; ')}`
      : '\nno sequential scan over 1,000+ rows in any plan',
  );

  // Every figure is printed: now the goals (bench/README.md), a line per miss, and a failed run.
  if (missed.length) {
    console.error(`\nGOALS MISSED (${missed.length}):`);
    for (const line of missed) console.error(`  GOAL MISSED: ${line}`);
    process.exitCode = 1;
  } else {
    console.log(`\ngoals met: ${Object.keys(GOALS).join(', ')}`);
  }
} finally {
  await app.close();
  if (projectId && database.driver === 'postgres') {
    const started = performance.now();
    await services.projects.delete(projectId);
    // Reclaim the dead rows now: with autovacuum off (as on this machine's server) the next run
    // would otherwise scan a table twice its size.
    await analyze(database.db, true);
    console.log(`deleted the bench project and vacuumed in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
  await database.close();
  rmSync(dataDir, { recursive: true, force: true });
}
