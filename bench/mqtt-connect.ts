/**
 * bench/mqtt-connect — 10,000 simulated devices connected to the real server (src/main.ts, a child
 * process) over MQTT: the connect rate, the server's RSS per connection, and the publish → PUBACK
 * latency of QoS 1 attribute reports at 1,000 reports/s while they are all connected. The same
 * run measures a bare Aedes broker (same version, no auth, no storage, a child process of its own)
 * under the same load, and prints ours/bare ratios. See bench/README.md.
 *
 *   npm run bench:mqtt-connect -- [--devices 10000] [--rate 1000] [--duration 10] [--warmup 2]
 *                                 [--concurrency 200] [--log-level info] [--cpu-prof <dir>]
 *   DATABASE_URL=postgres://... npm run bench:mqtt-connect    # PostgreSQL instead of embedded PGlite
 */
import { randomInt } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { pino } from 'pino';
import { devices } from '../src/db/schema/index.ts';
import { openDatabase } from '../src/db/open.ts';
import { createServices } from '../src/composition/services.ts';
import { dbProbe, type DbProbe } from './lib/mqtt-db-probe.ts';
import { measure, warmUpLoadGenerator, type ConnectLoad, type Measured } from './lib/mqtt-measure.ts';
import { ephemeralPorts, openFilesLimit, type Child } from './lib/mqtt-proc.ts';
import { check, judgeGoals, printGoals, printTable } from './lib/mqtt-report.ts';
import { seedMqttDevices } from './lib/mqtt-seed.ts';
import { startBare, startOurs } from './lib/mqtt-servers.ts';
import { accessToken } from './lib/server-api.ts';
import { forgetBenchProject } from './lib/forget-project.ts';
import { benchRun, reportMissedGoals } from './lib/run.ts';
import { benchArgs, intArg as benchInt } from './lib/args.ts';

const args = benchArgs('mqtt-connect', {
  devices: { type: 'string', default: '10000' },
  rate: { type: 'string', default: '1000' },
  duration: { type: 'string', default: '10' },
  warmup: { type: 'string', default: '2' },
  concurrency: { type: 'string', default: '200' },
  'log-level': { type: 'string', default: 'info' },
  'cpu-prof': { type: 'string' },
});
const intArg = (name: string, raw: string | undefined, min: number, max: number) =>
  benchInt('mqtt-connect', name, raw, min, max);
const N = intArg('devices', args.devices, 1, 60_000);
const RATE = intArg('rate', args.rate, 1, 100_000);
const DURATION = intArg('duration', args.duration, 1, 600);
const WARMUP = intArg('warmup', args.warmup, 0, 60);
const CONCURRENCY = intArg('concurrency', args.concurrency, 1, 5000);
const LOG_LEVEL = args['log-level'] ?? 'info';
if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(LOG_LEVEL)) {
  console.error('bench/mqtt-connect: --log-level must be one of fatal, error, warn, info, debug, trace, silent');
  process.exit(2);
}
/** A directory for V8 CPU profiles of our server (`node --cpu-prof`), written when it stops. */
const CPU_PROF = args['cpu-prof'] ? path.resolve(args['cpu-prof']) : undefined;
/** How long a CONNECT may wait for its CONNACK, and how long reports may wait for their PUBACK at the end. */
const CONNECT_TIMEOUT_MS = 30_000;
const ACK_GRACE_MS = 15_000;
/** How long the server's counters may take to show a change (presence flushes every second, stats are cached 2 s). */
const STAT_WAIT_MS = 15_000;

// Both ends hold one socket per device: this process N, each broker N (plus files, pipes, the database).
const FD_MARGIN = 256;
const fdLimit = openFilesLimit();
if (fdLimit < N + FD_MARGIN) {
  console.error(
    `bench/mqtt-connect: the open-files limit is ${fdLimit}, and ${N} connections need at least ${N + FD_MARGIN} in this ` +
      `process and in each broker (they inherit the limit). Raise it first, e.g. \`ulimit -n ${Math.max(65536, N * 2)}\`, or run with fewer --devices.`,
  );
  process.exit(2);
}
if (ephemeralPorts() < N + 1000) {
  console.error(
    `bench/mqtt-connect: net.ipv4.ip_local_port_range gives ${ephemeralPorts()} local ports; ${N} connections need more. Widen the range or use fewer --devices.`,
  );
  process.exit(2);
}

const frame = benchRun('mqtt-connect', 30);
const tmp = frame.tmp;
const dataDir = path.join(tmp, 'data');
const databaseUrl = process.env.DATABASE_URL?.trim() || undefined;
const problems: string[] = [];
/** The goals missed (bench/README.md): printed once every figure is, and the run fails. */
let goalsMissed: string[] = [];
const load: ConnectLoad = {
  devices: N,
  rate: RATE,
  durationS: DURATION,
  warmupS: WARMUP,
  concurrency: CONCURRENCY,
  connectTimeoutMs: CONNECT_TIMEOUT_MS,
  ackGraceMs: ACK_GRACE_MS,
  statWaitMs: STAT_WAIT_MS,
};

/** Our server, with the per-device rate limit raised when few devices carry the whole rate. */
async function startOurServer() {
  // The per-device rate limit must not refuse the bench's reports when there are few devices.
  const perDevice = Math.ceil((2 * RATE) / N);
  if (perDevice > 50)
    console.log(
      `note: ${RATE} reports/s over ${N} devices exceeds the server's default per-device limit; running it with MQTT_RATE_LIMIT=${perDevice}`,
    );
  return startOurs({
    dataDir,
    databaseUrl,
    logFile: path.join(tmp, 'ours.log'),
    env: { LOG_LEVEL, ...(perDevice > 50 ? { MQTT_RATE_LIMIT: String(perDevice) } : {}) },
    cpuProf: CPU_PROF,
  });
}

let database: Awaited<ReturnType<typeof openDatabase>> | undefined;
let projectId: string | undefined;
let probe: DbProbe | undefined;
const children: Child[] = [];
try {
  console.log(
    `bench/mqtt-connect: driver=${databaseUrl ? 'postgres' : 'pglite'} devices=${N} rate=${RATE}/s duration=${DURATION}s warmup=${WARMUP}s ` +
      `concurrency=${CONCURRENCY} log-level=${LOG_LEVEL} node=${process.version} cpus=${os.cpus().length} open-files=${fdLimit}`,
  );

  // 1. Provision: a project and N devices written straight into the database before the server
  // starts (the embedded database admits one process, so it is closed again before the server opens it).
  const log = pino({ level: 'warn' });
  database = await openDatabase({ DATA_DIR: dataDir, DATABASE_URL: databaseUrl }, log);
  const services = createServices({ db: database.db });
  const project = await services.projects.create({
    name: `bench-mqtt-connect ${new Date().toISOString()} ${randomInt(1e9)}`,
  });
  projectId = project.id;
  const seeded = await seedMqttDevices(database.db, project.id, N);
  await database.db.execute(sql`analyze ${devices}`);
  console.log(`seeded ${N} devices in ${(seeded.ms / 1000).toFixed(1)} s`);
  await database.close();
  database = undefined;
  const credentials = seeded.tokens.map((token) => ({ username: token, password: project.project_key }));

  // 2. Warm up the load generator against a throwaway bare broker, so the first measured broker does
  // not pay for a cold client. Both measured brokers then start cold.
  {
    const warm = await startBare('bare warm-up', tmp);
    const warmed = await warmUpLoadGenerator(warm.port, credentials, load);
    await warm.child.stop(10_000);
    console.log(
      `warmed up the load generator: ${warmed.connections} connections and ${RATE} reports to a throwaway bare broker`,
    );
  }

  // 3. The baseline: bare Aedes, before and after our server (the mean of the two is the baseline,
  // which evens out the load other processes put on a shared machine).
  const bares: Measured[] = [];
  const measureBare = async (n: number) => {
    const proc = await startBare(`bare #${n}`, tmp);
    children.push(proc.child);
    const bare = await measure(proc.child, proc.port, credentials, load);
    problems.push(...check(`bare #${n}`, bare, false, load));
    bares.push(bare);
  };
  await measureBare(1);

  // 4. Our server.
  const oursProc = await startOurServer();
  children.push(oursProc.child);
  const token = await accessToken(oursProc.base, project.app);
  probe = databaseUrl ? dbProbe(databaseUrl, oursProc.child.pid) : undefined;
  const ours = await measure(oursProc.child, oursProc.port, credentials, load, { base: oursProc.base, token }, probe);
  problems.push(...check('ours', ours, true, load));

  // 5. The baseline again.
  await measureBare(2);

  printTable(ours, bares, N);
  goalsMissed = printGoals(judgeGoals(ours, bares, load), load);
} catch (err) {
  problems.push(`run aborted: ${(err as Error).stack ?? String(err)}`);
} finally {
  for (const child of children) if (child.alive()) await child.stop(10_000);
  await probe?.close().catch(() => {});
  if (databaseUrl && projectId) {
    // A shared PostgreSQL database keeps no trace of the run (this machine's server has autovacuum off).
    try {
      const started = performance.now();
      database ??= await openDatabase({ DATA_DIR: dataDir, DATABASE_URL: databaseUrl }, pino({ level: 'warn' }));
      await forgetBenchProject(database.db, projectId);
      console.log(`deleted the bench project and vacuumed in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    } catch (err) {
      problems.push(`cleanup: ${(err as Error).message}`);
    }
  }
  await database?.close();
}

// Every figure is printed: now the goals, a line per miss, and a failed run (after the checks' verdict).
reportMissedGoals(goalsMissed, problems, 'all checks passed, but not every goal was met');
frame.finish(problems);
