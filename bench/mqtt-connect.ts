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
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { pino } from 'pino';
import postgres from 'postgres';
import { attributeValues, devices } from '../src/db/schema.ts';
import { openDatabase } from '../src/db/open.ts';
import { randomToken } from '../src/lib/ids.ts';
import { createServices } from '../src/composition/services.ts';
import type { MqttClient } from 'mqtt';
import { Sensors } from '../simulator/device.ts';
import {
  closeFleet,
  connectFleet,
  percentile,
  reportLoad,
  subscribeFleet,
  type Credentials,
  type FleetEvents,
  type ReportRun,
} from './lib/mqtt-load.ts';
import {
  BENCH_ADMISSION,
  cpuBetween,
  cpuByPid,
  cpuMsOf,
  ephemeralPorts,
  freePort,
  localPortsTo,
  machineBusyMs,
  openFilesLimit,
  spawnEntry,
  tail,
  waitForPort,
  type Child,
  type Memory,
} from './lib/mqtt-proc.ts';
import { seedMqttDevices } from './lib/mqtt-seed.ts';
import { benchRun } from './lib/run.ts';
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
const cpuMs = (usage: NodeJS.CpuUsage) => (usage.user + usage.system) / 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MiB = 1024 * 1024;

interface Measured {
  connected: number;
  failures: Map<string, number>;
  connectMs: number;
  connectP50: number;
  connectP99: number;
  subscribeMs: number;
  subscribeFailed: number;
  idle: Memory;
  /** After the first half of the connections. */
  mid: { memory: Memory; connected: number } | undefined;
  connectedMem: Memory;
  loaded: Memory;
  cpuConnectMs: number;
  cpuReportMs: number;
  benchCpuConnectMs: number;
  /** CPU of the PostgreSQL backends serving the server (NaN on PGlite, which runs inside it). */
  dbConnectMs: number;
  dbReportMs: number;
  /** Share of the machine's CPUs that other processes used while connecting and while reporting, %. */
  othersConnect: number;
  othersReport: number;
  reportWallMs: number;
  run: ReportRun;
  dropped: number;
  responsesOk: number;
  responsesBad: number;
  badSamples: string[];
  onlineLoaded?: number;
  onlineClosed?: number;
  closeMs: number;
  stopMs: number;
  stopKilled: boolean;
  logged: { warn: number; error: number; samples: string[] };
}

interface HttpAccess {
  base: string;
  token: string;
}

/**
 * The CPU of the PostgreSQL backends serving our server (found by the client ports of the server's
 * connections, since other clients may use the same database), so "other processes" does not hide
 * the database's share of the work. Local servers only: the backends' CPU time is read from /proc.
 */
interface DbProbe {
  /** CPU ms by backend pid; undefined when the backends are not processes of this machine. */
  snapshot(): Promise<Map<number, number> | undefined>;
  close(): Promise<void>;
}

function dbProbe(url: string, serverPid: number): DbProbe {
  const client = postgres(url, { max: 1, onnotice: () => {} });
  const port = Number(new URL(url).port || 5432);
  return {
    async snapshot() {
      const ports = localPortsTo(serverPid, port);
      const rows = await client<
        { pid: number; client_port: number | null }[]
      >`select pid, client_port from pg_stat_activity where datname = current_database()`;
      const ours = rows.filter((r) => r.client_port !== null && ports.has(r.client_port));
      const cpu = cpuByPid(ours.map((r) => r.pid));
      return ours.length && !cpu.size ? undefined : cpu;
    },
    close: () => client.end({ timeout: 5 }),
  };
}

async function apiJson(url: string, init?: RequestInit): Promise<Record<string, unknown>> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
  const body = (await res.json()) as { result?: boolean; info?: Record<string, unknown> };
  if (res.status !== 200 || body.result !== true)
    throw new Error(`${url}: HTTP ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
  return body.info ?? {};
}

/** Polls devices_stat until the online count is `expected` (answers the last count seen). */
async function waitOnline(http: HttpAccess, expected: number): Promise<number> {
  const deadline = performance.now() + STAT_WAIT_MS;
  for (;;) {
    const stat = await apiJson(`${http.base}/api/v1/devices_stat`, {
      headers: { authorization: `Bearer ${http.token}` },
    });
    const online = Number(stat.online_device_total);
    if (online === expected || performance.now() > deadline) return online;
    await sleep(250);
  }
}

/** Warnings and errors the server logged (pino JSON lines, level 40+). */
function loggedProblems(file: string): Measured['logged'] {
  const out = { warn: 0, error: 0, samples: [] as string[] };
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let level: number;
    try {
      const parsed = JSON.parse(line) as { level?: unknown };
      level = typeof parsed.level === 'number' ? parsed.level : 0;
    } catch {
      level = 50; // not a JSON line: a crash trace or a runtime warning, counted as an error
    }
    if (level >= 50) out.error++;
    else if (level >= 40) out.warn++;
    else continue;
    if (out.samples.length < 5) out.samples.push(line.slice(0, 300));
  }
  return out;
}

function ensureAlive(child: Child, phase: string) {
  if (!child.alive())
    throw new Error(
      `${child.name} exited (${child.describeExit()}) during ${phase}; last log lines:\n${tail(child.logFile, 30)}`,
    );
}

/** Connect, subscribe, report, disconnect, stop: the same sequence against either broker. */
async function measure(
  child: Child,
  mqttPort: number,
  credentials: Credentials[],
  http?: HttpAccess,
  db?: DbProbe,
): Promise<Measured> {
  const label = child.name;
  await sleep(1000);
  const idle = await child.memory();
  // Connected in two halves, each followed by its subscriptions; the memory taken between them gives
  // the marginal cost of a connection (second half), free of what the broker had allocated and freed
  // before the first connection (startup, migrations), which the average from idle also counts.
  const half = Math.ceil(N / 2);
  const events: FleetEvents = { dropped: 0, responsesOk: 0, responsesBad: 0, badSamples: [] };
  const clients: MqttClient[] = [];
  const failures = new Map<string, number>();
  const connectLatencies: number[] = [];
  let connectMs = 0;
  let cpuConnectMs = 0;
  let benchCpuConnectMs = 0;
  let machineConnectMs = 0;
  /** NaN when there is no database process to measure (PGlite runs inside the server; a remote server). */
  let dbConnectMs = db ? 0 : Number.NaN;
  let subscribeMs = 0;
  let subscribeFailed = 0;
  let mid: { memory: Memory; connected: number } | undefined;
  for (const [k, part] of [credentials.slice(0, half), credentials.slice(half)].entries()) {
    if (!part.length) continue;
    const cpu0 = cpuMsOf(child.pid);
    const bench0 = process.cpuUsage();
    const machine0 = machineBusyMs();
    const db0 = await db?.snapshot();
    const fleet = await connectFleet({
      port: mqttPort,
      credentials: part,
      concurrency: CONCURRENCY,
      timeoutMs: CONNECT_TIMEOUT_MS,
      events,
      firstIndex: k * half,
    });
    benchCpuConnectMs += cpuMs(process.cpuUsage(bench0));
    cpuConnectMs += cpuMsOf(child.pid) - cpu0;
    machineConnectMs += machineBusyMs() - machine0;
    const db1 = await db?.snapshot();
    dbConnectMs += db0 && db1 ? cpuBetween(db0, db1) : Number.NaN;
    connectMs += fleet.ms;
    clients.push(...fleet.clients);
    connectLatencies.push(...fleet.connectLatency);
    for (const [reason, n] of fleet.failures) failures.set(reason, (failures.get(reason) ?? 0) + n);
    ensureAlive(child, 'connect');
    // Like a device SDK: subscribe to the answers of its reports (only our server sends them).
    const sub = await subscribeFleet(fleet.clients, 'attributes/response', CONCURRENCY);
    subscribeMs += sub.ms;
    subscribeFailed += sub.failed;
    ensureAlive(child, 'subscribe');
    if (k === 0) {
      await sleep(1000);
      mid = { memory: await child.memory(), connected: clients.length };
    }
  }
  const othersConnect = othersShare(machineConnectMs, cpuConnectMs + (dbConnectMs || 0), benchCpuConnectMs, connectMs);
  const connected = clients.length;
  const connectTimes = Float64Array.from(connectLatencies).sort();
  console.log(
    `[${label}] connected ${connected}/${N} in ${(connectMs / 1000).toFixed(2)} s (${Math.round(connected / (connectMs / 1000))}/s)` +
      (failures.size ? `; failures: ${[...failures].map(([k, v]) => `${v}× ${k}`).join(', ')}` : ''),
  );

  await sleep(2000);
  ensureAlive(child, 'subscribe');
  const connectedMem = await child.memory();
  const cpu2 = cpuMsOf(child.pid);
  console.log(
    `[${label}] subscribed in ${(subscribeMs / 1000).toFixed(2)} s; after a full GC: RSS ${(idle.rss / MiB).toFixed(1)} → ${mid ? (mid.memory.rss / MiB).toFixed(1) : '–'} → ` +
      `${(connectedMem.rss / MiB).toFixed(1)} MiB, JS heap ${(idle.heapUsed / MiB).toFixed(1)} → ${mid ? (mid.memory.heapUsed / MiB).toFixed(1) : '–'} → ${(connectedMem.heapUsed / MiB).toFixed(1)} MiB`,
  );

  const sensors = new Sensors();
  const payload = () => {
    const v = sensors.next();
    return JSON.stringify({ temperature: v.temperature, humidity: v.humidity });
  };
  const reportsAt = (performance.now() - child.startedAt) / 1000;
  const bench2 = process.cpuUsage();
  const machine2 = machineBusyMs();
  const wall2 = performance.now();
  const db2 = await db?.snapshot();
  const run = connected
    ? await reportLoad({
        clients: clients,
        rate: RATE,
        warmupS: WARMUP,
        durationS: DURATION,
        payload,
        graceMs: ACK_GRACE_MS,
      })
    : emptyRun();
  const cpu3 = cpuMsOf(child.pid);
  const reportWallMs = performance.now() - wall2;
  const db3 = await db?.snapshot();
  const dbReportMs = db2 && db3 ? cpuBetween(db2, db3) : Number.NaN;
  const othersReport = othersShare(
    machineBusyMs() - machine2,
    cpu3 - cpu2 + (dbReportMs || 0),
    cpuMs(process.cpuUsage(bench2)),
    reportWallMs,
  );
  ensureAlive(child, 'reports');
  const loaded = await child.memory();
  console.log(
    `[${label}] ${run.sent} reports in ${DURATION} s (${run.rate.toFixed(0)}/s), p50 ${percentile(run.latencies, 50).toFixed(2)} ms, p99 ${percentile(run.latencies, 99).toFixed(2)} ms`,
  );
  console.log(
    `[${label}] timed window ${(reportsAt + WARMUP).toFixed(0)}–${(reportsAt + WARMUP + DURATION).toFixed(0)} s after the broker started; per second p50/p99/max ms: ${run.perSecond.map((s) => `${s.p50.toFixed(1)}/${s.p99.toFixed(0)}/${s.max.toFixed(0)}`).join('  ')}`,
  );

  // Answers are published after the PUBACK's callback: give the last ones a moment.
  const answersDeadline = performance.now() + 5000;
  while (http && events.responsesOk + events.responsesBad < run.acked && performance.now() < answersDeadline)
    await sleep(50);

  let onlineLoaded: number | undefined;
  let onlineClosed: number | undefined;
  if (http) onlineLoaded = await waitOnline(http, connected - events.dropped);
  const dropped = events.dropped;
  const closeMs = await closeFleet(clients);
  if (http) onlineClosed = await waitOnline(http, 0);
  ensureAlive(child, 'disconnect');
  const stopped = await child.stop(30_000);
  console.log(
    `[${label}] closed the clients in ${(closeMs / 1000).toFixed(2)} s; stopped in ${(stopped.ms / 1000).toFixed(2)} s` +
      ` (${stopped.killed ? 'KILLED after 30 s' : stopped.signal ? `signal ${stopped.signal}` : `exit ${stopped.code}`})`,
  );

  return {
    connected,
    failures,
    connectMs,
    connectP50: percentile(connectTimes, 50),
    connectP99: percentile(connectTimes, 99),
    subscribeMs,
    subscribeFailed,
    idle,
    mid,
    connectedMem,
    loaded,
    cpuConnectMs,
    dbConnectMs,
    dbReportMs,
    cpuReportMs: cpu3 - cpu2,
    benchCpuConnectMs,
    othersConnect,
    othersReport,
    reportWallMs,
    run,
    dropped,
    responsesOk: events.responsesOk,
    responsesBad: events.responsesBad,
    badSamples: events.badSamples,
    onlineLoaded,
    onlineClosed,
    closeMs,
    stopMs: stopped.ms,
    stopKilled: stopped.killed || (stopped.code !== 0 && stopped.signal !== 'SIGTERM'),
    logged: loggedProblems(child.logFile),
  };
}

/** What other processes took of the machine's CPUs over `wallMs`, in %: the noise of a shared machine. */
function othersShare(machineMs: number, brokerMs: number, benchMs: number, wallMs: number): number {
  const others = machineMs - brokerMs - benchMs;
  return Math.max(0, (100 * others) / (wallMs * os.cpus().length));
}

function emptyRun(): ReportRun {
  return {
    sent: 0,
    warmupSent: 0,
    acked: 0,
    failed: 0,
    unacked: 0,
    skipped: 0,
    latencies: new Float64Array(),
    rate: 0,
    perSecond: [],
  };
}

/** The checks that make the run fail: every device connected and every report acknowledged. */
function check(label: string, m: Measured, expectAnswers: boolean) {
  if (m.connected < N)
    problems.push(
      `${label}: ${N - m.connected} of ${N} devices did not connect (${[...m.failures].map(([k, v]) => `${v}× ${k}`).join(', ')})`,
    );
  if (m.subscribeFailed) problems.push(`${label}: ${m.subscribeFailed} subscriptions failed`);
  if (m.dropped) problems.push(`${label}: ${m.dropped} connections dropped by the broker during the run`);
  const total = m.run.sent + m.run.warmupSent;
  if (m.run.failed || m.run.unacked || m.run.skipped) {
    problems.push(
      `${label}: of ${total} reports ${m.run.failed} failed, ${m.run.unacked} got no PUBACK within ${ACK_GRACE_MS / 1000} s, ${m.run.skipped} were skipped (client gone)`,
    );
  }
  if (m.run.sent && m.run.rate < RATE * 0.95)
    problems.push(
      `${label}: published only ${m.run.rate.toFixed(0)} reports/s of ${RATE} (the load generator fell behind)`,
    );
  if (expectAnswers) {
    if (m.responsesOk !== m.run.acked) {
      problems.push(
        `${label}: ${m.run.acked} reports acknowledged but ${m.responsesOk} answered {"result":1} and ${m.responsesBad} otherwise` +
          (m.badSamples.length ? ` (e.g. ${m.badSamples.join(' | ')})` : ''),
      );
    }
    if (m.onlineLoaded !== m.connected - m.dropped)
      problems.push(
        `${label}: devices_stat says ${m.onlineLoaded} online while ${m.connected - m.dropped} were connected`,
      );
    if (m.onlineClosed !== 0)
      problems.push(
        `${label}: devices_stat still says ${m.onlineClosed} online ${STAT_WAIT_MS / 1000} s after every client disconnected`,
      );
  }
  if (m.stopKilled) problems.push(`${label}: did not stop cleanly on SIGTERM`);
  if (m.logged.error) problems.push(`${label}: logged ${m.logged.error} errors, e.g. ${m.logged.samples.join(' | ')}`);
}

async function startBare(name: string): Promise<{ child: Child; port: number }> {
  const port = await freePort();
  const child = spawnEntry(
    name,
    'bench/lib/mqtt-bare-broker.ts',
    { BARE_MQTT_PORT: String(port) },
    path.join(tmp, `${name.replace(/\W+/g, '-')}.log`),
  );
  await waitForPort(port, child, 60_000);
  return { child, port };
}

async function startOurs(): Promise<{ child: Child; port: number; base: string }> {
  // main.ts logs the HTTP address but not the MQTT one: both ports are chosen here.
  const [httpPort, mqttPort] = [await freePort(), await freePort()];
  // The per-device rate limit must not refuse the bench's reports when there are few devices.
  const perDevice = Math.ceil((2 * RATE) / N);
  if (perDevice > 50)
    console.log(
      `note: ${RATE} reports/s over ${N} devices exceeds the server's default per-device limit; running it with MQTT_RATE_LIMIT=${perDevice}`,
    );
  const child = spawnEntry(
    'ours',
    'src/main.ts',
    {
      DATA_DIR: dataDir,
      DATABASE_URL: databaseUrl,
      HOST: '127.0.0.1',
      HTTP_PORT: String(httpPort),
      MQTT_PORT: String(mqttPort),
      TCP_PORT: '0',
      LOG_LEVEL,
      JWT_SECRET: randomToken(48),
      ...(perDevice > 50 ? { MQTT_RATE_LIMIT: String(perDevice) } : {}),
      ...BENCH_ADMISSION,
    },
    path.join(tmp, 'ours.log'),
    CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF}`] : [],
  );
  await waitForPort(httpPort, child, 120_000);
  await waitForPort(mqttPort, child, 60_000);
  return { child, port: mqttPort, base: `http://127.0.0.1:${httpPort}` };
}

const fmt = (v: number | undefined, digits = 0) =>
  v === undefined || Number.isNaN(v)
    ? '–'
    : v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const ratio = (a: number, b: number) => (b > 0 && Number.isFinite(a / b) ? (a / b).toFixed(2) : '–');

function printTable(ours: Measured, bares: Measured[]) {
  const perConn = (m: Measured, key: 'rss' | 'heapUsed' | 'external') =>
    m.connected ? (m.connectedMem[key] - m.idle[key]) / m.connected : Number.NaN;
  const marginal = (m: Measured, key: 'rss' | 'heapUsed') =>
    m.mid && m.connected > m.mid.connected
      ? (m.connectedMem[key] - m.mid.memory[key]) / (m.connected - m.mid.connected)
      : Number.NaN;
  const lat = (m: Measured, p: number) => percentile(m.run.latencies, p);
  const reports = (m: Measured) => Math.max(1, m.run.sent + m.run.warmupSent);
  const perConnected = (m: Measured, ms: number) => ms / Math.max(1, m.connected);
  // label, figure of one run, digits, whether the ratio is a headline figure
  const rows: Array<[string, (m: Measured) => number, number, boolean]> = [
    ['connect rate (connections/s)', (m) => m.connected / (m.connectMs / 1000), 0, true],
    ['connect time p50 (ms)', (m) => m.connectP50, 1, false],
    ['connect time p99 (ms)', (m) => m.connectP99, 1, false],
    ['subscribe (s, all devices)', (m) => m.subscribeMs / 1000, 2, false],
    ['RSS idle (MiB)', (m) => m.idle.rss / MiB, 1, false],
    ['RSS connected (MiB)', (m) => m.connectedMem.rss / MiB, 1, false],
    ['RSS per connection (KiB)', (m) => perConn(m, 'rss') / 1024, 1, true],
    ['  JS heap per connection (KiB)', (m) => perConn(m, 'heapUsed') / 1024, 1, true],
    ['  external per connection (KiB)', (m) => perConn(m, 'external') / 1024, 1, false],
    ['RSS per connection, 2nd half (KiB)', (m) => marginal(m, 'rss') / 1024, 1, true],
    ['  JS heap per connection, 2nd half (KiB)', (m) => marginal(m, 'heapUsed') / 1024, 1, true],
    ['RSS after reports (MiB)', (m) => m.loaded.rss / MiB, 1, false],
    ['RSS peak (MiB)', (m) => m.loaded.peak / MiB, 1, false],
    ['broker CPU per connection (ms)', (m) => perConnected(m, m.cpuConnectMs), 3, true],
    ['database CPU per connection (ms)', (m) => perConnected(m, m.dbConnectMs), 3, false],
    ['bench CPU per connection (ms)', (m) => perConnected(m, m.benchCpuConnectMs), 3, false],
    ['reports/s published', (m) => m.run.rate, 0, false],
    ['report latency p50 (ms)', (m) => lat(m, 50), 2, true],
    ['report latency p99 (ms)', (m) => lat(m, 99), 2, true],
    ['report latency max (ms)', (m) => lat(m, 100), 2, false],
    ['broker CPU per report (ms)', (m) => m.cpuReportMs / reports(m), 3, true],
    ['database CPU per report (ms)', (m) => m.dbReportMs / reports(m), 3, false],
    ['broker CPU busy while reporting (%)', (m) => (100 * m.cpuReportMs) / m.reportWallMs, 0, false],
    ['other processes, connecting (% of CPUs)', (m) => m.othersConnect, 0, false],
    ['other processes, reporting (% of CPUs)', (m) => m.othersReport, 0, false],
  ];
  const w = [40, 11, ...bares.map(() => 11), 11];
  const line = (cells: string[]) =>
    console.log(cells.map((c, i) => (i === 0 ? c.padEnd(w[0]!) : c.padStart(w[i]!))).join('  '));
  console.log('');
  line(['', 'ours', ...bares.map((_, i) => `bare #${i + 1}`), 'ours/bare']);
  line(w.map((n) => '-'.repeat(n)));
  for (const [label, figure, digits, headline] of rows) {
    const a = figure(ours);
    const b = bares.map(figure);
    // The baseline is the mean of the bare runs before and after ours (noise of a shared machine).
    const mean = b.reduce((x, y) => x + y, 0) / b.length;
    line([label, fmt(a, digits), ...b.map((v) => fmt(v, digits)), headline ? ratio(a, mean) : '']);
  }
  console.log('');
  console.log(
    `ours: ${ours.connected}/${N} connected, ${ours.run.acked}/${reports(ours)} reports acknowledged, ${ours.responsesOk} answered {"result":1}, ` +
      `devices_stat online ${fmt(ours.onlineLoaded)} while connected and ${fmt(ours.onlineClosed)} after disconnecting, ${ours.logged.warn} warnings / ${ours.logged.error} errors logged`,
  );
  for (const [i, bare] of bares.entries())
    console.log(
      `bare #${i + 1}: ${bare.connected}/${N} connected, ${bare.run.acked}/${reports(bare)} reports acknowledged`,
    );
  console.log('ours/bare: ours over the mean of the bare runs (before and after ours)');
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

  // 2. Warm up the load generator (mqtt.js compiled by the JIT, sockets, timers) against a throwaway
  // bare broker, so the first measured broker does not pay for a cold client. Both measured brokers
  // then start cold.
  {
    const warm = await startBare('bare warm-up');
    const n = Math.min(N, 500);
    const fleet = await connectFleet({
      port: warm.port,
      credentials: credentials.slice(0, n),
      concurrency: CONCURRENCY,
      timeoutMs: CONNECT_TIMEOUT_MS,
    });
    await subscribeFleet(fleet.clients, 'attributes/response', CONCURRENCY);
    await reportLoad({
      clients: fleet.clients,
      rate: RATE,
      warmupS: 0,
      durationS: 1,
      payload: () => '{"temperature":20,"humidity":50}',
      graceMs: 5000,
    });
    await closeFleet(fleet.clients);
    await warm.child.stop(10_000);
    console.log(
      `warmed up the load generator: ${fleet.clients.length} connections and ${RATE} reports to a throwaway bare broker`,
    );
  }

  // 3. The baseline: bare Aedes, before and after our server (the mean of the two is the baseline,
  // which evens out the load other processes put on a shared machine).
  const bares: Measured[] = [];
  const measureBare = async (n: number) => {
    const proc = await startBare(`bare #${n}`);
    children.push(proc.child);
    const bare = await measure(proc.child, proc.port, credentials);
    check(`bare #${n}`, bare, false);
    bares.push(bare);
  };
  await measureBare(1);

  // 4. Our server.
  const oursProc = await startOurs();
  children.push(oursProc.child);
  const token = String(
    (
      await apiJson(`${oursProc.base}/api/v1/access_token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(project.app),
      })
    ).access_token,
  );
  probe = databaseUrl ? dbProbe(databaseUrl, oursProc.child.pid) : undefined;
  const ours = await measure(oursProc.child, oursProc.port, credentials, { base: oursProc.base, token }, probe);
  check('ours', ours, true);

  // 5. The baseline again.
  await measureBare(2);

  printTable(ours, bares);
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
      await createServices({ db: database.db }).projects.delete(projectId);
      for (const table of [devices, attributeValues]) await database.db.execute(sql`vacuum (analyze) ${table}`);
      console.log(`deleted the bench project and vacuumed in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    } catch (err) {
      problems.push(`cleanup: ${(err as Error).message}`);
    }
  }
  await database?.close();
}

if (problems.length) {
  frame.keepLogs();
  console.error(`\nFAILED checks:\n${problems.map((p) => `- ${p}`).join('\n')}\nlogs kept in ${tmp}`);
  process.exit(1);
}
console.log('all checks passed');
process.exit(0);
