import os from 'node:os';
import type { MqttClient } from 'mqtt';
import { Sensors } from '../../simulator/device.ts';
import type { DbProbe } from './mqtt-db-probe.ts';
import {
  closeFleet,
  connectFleet,
  percentile,
  reportLoad,
  subscribeFleet,
  type Credentials,
  type FleetEvents,
  type ReportRun,
} from './mqtt-load.ts';
import { cpuBetween, cpuMsOf, machineBusyMs, type Child, type Memory } from './mqtt-proc.ts';
import { ensureAlive, loggedProblems, type Logged } from './mqtt-servers.ts';
import { waitOnline, type HttpAccess } from './server-api.ts';

/** The load of bench/mqtt-connect: its flags and time limits. */
export interface ConnectLoad {
  devices: number;
  /** Reports per second, all devices together. */
  rate: number;
  durationS: number;
  warmupS: number;
  /** CONNECTs (and SUBSCRIBEs) in flight at a time. */
  concurrency: number;
  /** How long a CONNECT may wait for its CONNACK. */
  connectTimeoutMs: number;
  /** How long reports may wait for their PUBACK at the end. */
  ackGraceMs: number;
  /** How long the server's counters may take to show a change. */
  statWaitMs: number;
}

/** What one broker's run measured. */
export interface Measured {
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
  logged: Logged;
}

const cpuMs = (usage: NodeJS.CpuUsage) => (usage.user + usage.system) / 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const MiB = 1024 * 1024;

/** Connect, subscribe, report, disconnect, stop: the same sequence against either broker. */
export async function measure(
  child: Child,
  mqttPort: number,
  credentials: Credentials[],
  load: ConnectLoad,
  http?: HttpAccess,
  db?: DbProbe,
): Promise<Measured> {
  const label = child.name;
  await sleep(1000);
  const idle = await child.memory();
  const events: FleetEvents = { dropped: 0, responsesOk: 0, responsesBad: 0, badSamples: [] };
  const c = await connectInHalves(child, mqttPort, credentials, load, events, db);
  const connected = c.clients.length;
  const connectTimes = Float64Array.from(c.connectLatencies).sort();
  console.log(
    `[${label}] connected ${connected}/${load.devices} in ${(c.connectMs / 1000).toFixed(2)} s (${Math.round(connected / (c.connectMs / 1000))}/s)` +
      (c.failures.size ? `; failures: ${[...c.failures].map(([k, v]) => `${v}× ${k}`).join(', ')}` : ''),
  );

  await sleep(2000);
  ensureAlive(child, 'subscribe');
  const connectedMem = await child.memory();
  const cpuBefore = cpuMsOf(child.pid);
  const mid = c.mid;
  /** A memory figure at idle → half → all connected, in MiB. */
  const steps = (key: 'rss' | 'heapUsed' | 'heapTotal' | 'youngCommitted' | 'youngGeneration') =>
    [idle, mid?.memory, connectedMem].map((m) => (m ? (m[key] / MiB).toFixed(1) : '–')).join(' → ');
  console.log(
    `[${label}] subscribed in ${(c.subscribeMs / 1000).toFixed(2)} s; after a full GC: RSS ${steps('rss')} MiB, ` +
      `JS heap ${steps('heapUsed')} MiB (V8 committed ${steps('heapTotal')} MiB, of it the young generation ${steps('youngCommitted')}, ` +
      `of that resident ${steps('youngGeneration')})`,
  );

  const r = await reportPhase(child, c.clients, cpuBefore, load, db);
  const d = await disconnectPhase(child, c.clients, events, r.run.acked, load, http);

  return {
    connected,
    failures: c.failures,
    connectMs: c.connectMs,
    connectP50: percentile(connectTimes, 50),
    connectP99: percentile(connectTimes, 99),
    subscribeMs: c.subscribeMs,
    subscribeFailed: c.subscribeFailed,
    idle,
    mid,
    connectedMem,
    loaded: r.loaded,
    cpuConnectMs: c.cpuConnectMs,
    dbConnectMs: c.dbConnectMs,
    dbReportMs: r.dbReportMs,
    cpuReportMs: r.cpuReportMs,
    benchCpuConnectMs: c.benchCpuConnectMs,
    othersConnect: c.othersConnect,
    othersReport: r.othersReport,
    reportWallMs: r.reportWallMs,
    run: r.run,
    dropped: d.dropped,
    responsesOk: events.responsesOk,
    responsesBad: events.responsesBad,
    badSamples: events.badSamples,
    onlineLoaded: d.onlineLoaded,
    onlineClosed: d.onlineClosed,
    closeMs: d.closeMs,
    stopMs: d.stopped.ms,
    stopKilled: d.stopped.killed || (d.stopped.code !== 0 && d.stopped.signal !== 'SIGTERM'),
    logged: loggedProblems(child.logFile),
  };
}

/**
 * Connects the fleet in two halves, each followed by its subscriptions; the memory taken between them
 * gives the marginal cost of a connection (second half), free of what the broker had allocated and
 * freed before the first connection (startup, migrations), which the average from idle also counts.
 */
async function connectInHalves(
  child: Child,
  mqttPort: number,
  credentials: Credentials[],
  load: ConnectLoad,
  events: FleetEvents,
  db: DbProbe | undefined,
) {
  const half = Math.ceil(load.devices / 2);
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
      concurrency: load.concurrency,
      timeoutMs: load.connectTimeoutMs,
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
    const sub = await subscribeFleet(fleet.clients, 'attributes/response', load.concurrency);
    subscribeMs += sub.ms;
    subscribeFailed += sub.failed;
    ensureAlive(child, 'subscribe');
    if (k === 0) {
      await sleep(1000);
      mid = { memory: await child.memory(), connected: clients.length };
    }
  }
  const othersConnect = othersShare(machineConnectMs, cpuConnectMs + (dbConnectMs || 0), benchCpuConnectMs, connectMs);
  return {
    clients,
    failures,
    connectLatencies,
    connectMs,
    cpuConnectMs,
    benchCpuConnectMs,
    dbConnectMs,
    othersConnect,
    subscribeMs,
    subscribeFailed,
    mid,
  };
}

/** QoS 1 attribute reports at `load.rate` from the connected clients; `cpuBefore` is the broker's CPU ms at the start. */
async function reportPhase(
  child: Child,
  clients: MqttClient[],
  cpuBefore: number,
  load: ConnectLoad,
  db: DbProbe | undefined,
) {
  const label = child.name;
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
  const run = clients.length
    ? await reportLoad({
        clients: clients,
        rate: load.rate,
        warmupS: load.warmupS,
        durationS: load.durationS,
        payload,
        graceMs: load.ackGraceMs,
      })
    : emptyRun();
  const cpu3 = cpuMsOf(child.pid);
  const reportWallMs = performance.now() - wall2;
  const db3 = await db?.snapshot();
  const dbReportMs = db2 && db3 ? cpuBetween(db2, db3) : Number.NaN;
  const othersReport = othersShare(
    machineBusyMs() - machine2,
    cpu3 - cpuBefore + (dbReportMs || 0),
    cpuMs(process.cpuUsage(bench2)),
    reportWallMs,
  );
  ensureAlive(child, 'reports');
  const loaded = await child.memory();
  console.log(
    `[${label}] ${run.sent} reports in ${load.durationS} s (${run.rate.toFixed(0)}/s), p50 ${percentile(run.latencies, 50).toFixed(2)} ms, p99 ${percentile(run.latencies, 99).toFixed(2)} ms`,
  );
  console.log(
    `[${label}] timed window ${(reportsAt + load.warmupS).toFixed(0)}–${(reportsAt + load.warmupS + load.durationS).toFixed(0)} s after the broker started; per second p50/p99/max ms: ${run.perSecond.map((s) => `${s.p50.toFixed(1)}/${s.p99.toFixed(0)}/${s.max.toFixed(0)}`).join('  ')}`,
  );
  return { run, cpuReportMs: cpu3 - cpuBefore, reportWallMs, dbReportMs, othersReport, loaded };
}

/**
 * Waits for the answers to the acknowledged reports, reads the online count (our server only: `http`),
 * closes the clients, reads it again, and stops the broker.
 */
async function disconnectPhase(
  child: Child,
  clients: MqttClient[],
  events: FleetEvents,
  acked: number,
  load: ConnectLoad,
  http: HttpAccess | undefined,
) {
  const label = child.name;
  // Answers are published after the PUBACK's callback: give the last ones a moment.
  const answersDeadline = performance.now() + 5000;
  while (http && events.responsesOk + events.responsesBad < acked && performance.now() < answersDeadline)
    await sleep(50);

  let onlineLoaded: number | undefined;
  let onlineClosed: number | undefined;
  if (http) onlineLoaded = await waitOnline(http, clients.length - events.dropped, load.statWaitMs);
  const dropped = events.dropped;
  const closeMs = await closeFleet(clients);
  if (http) onlineClosed = await waitOnline(http, 0, load.statWaitMs);
  ensureAlive(child, 'disconnect');
  const stopped = await child.stop(30_000);
  console.log(
    `[${label}] closed the clients in ${(closeMs / 1000).toFixed(2)} s; stopped in ${(stopped.ms / 1000).toFixed(2)} s` +
      ` (${stopped.killed ? 'KILLED after 30 s' : stopped.signal ? `signal ${stopped.signal}` : `exit ${stopped.code}`})`,
  );
  return { onlineLoaded, onlineClosed, dropped, closeMs, stopped };
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

/**
 * Warms up the load generator (mqtt.js compiled by the JIT, sockets, timers) against a throwaway bare
 * broker, so the first measured broker does not pay for a cold client: up to 500 connections, their
 * subscriptions and one second of reports.
 */
export async function warmUpLoadGenerator(
  port: number,
  credentials: Credentials[],
  load: ConnectLoad,
): Promise<{ connections: number }> {
  const n = Math.min(load.devices, 500);
  const fleet = await connectFleet({
    port,
    credentials: credentials.slice(0, n),
    concurrency: load.concurrency,
    timeoutMs: load.connectTimeoutMs,
  });
  await subscribeFleet(fleet.clients, 'attributes/response', load.concurrency);
  await reportLoad({
    clients: fleet.clients,
    rate: load.rate,
    warmupS: 0,
    durationS: 1,
    payload: () => '{"temperature":20,"humidity":50}',
    graceMs: 5000,
  });
  await closeFleet(fleet.clients);
  return { connections: fleet.clients.length };
}
