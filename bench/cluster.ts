/**
 * bench/cluster — cluster mode on this machine (docs/cluster.md): server processes (src/main.ts) on one
 * PostgreSQL and the NATS server, under a CLUSTER_NAME of the run's own. Three measurements, each next to
 * its baseline in the same run:
 *
 * 1. Ingest: QoS 1 attribute reports at a fixed rate into one node alone (no NATS) and into one node of a
 *    two-node cluster, all running, in turn for --ingest-rounds rounds: the server's CPU per report and the
 *    publish → PUBACK latency. The capacity of a node in cluster mode is the median of the rounds' single /
 *    cluster CPU per report (goal ≥ 0.9).
 * 2. Round trips: devices on node B answer commands at once; synchronous commands
 *    (`command/sync/send`) and attribute pushes are sent at --rate per second, in alternating one-second
 *    blocks through node A (cross-node) and through node B (same node): p50/p99 of each (goal: cross-node
 *    p99 ≤ 20 ms at 100 commands/s).
 * 3. Failover: --devices devices on node B stream QoS 1 reports and know both nodes (mqtt.js `servers`);
 *    node B is SIGKILLed: the time until every device is connected to node A again and until the database
 *    says each is online there, and every acknowledged report in history exactly once (must be 0 lost).
 *
 *   DATABASE_URL=postgres://… npm run bench:cluster -- [--devices 2000] [--rate 100] [--duration 10]
 *       [--ingest-devices 200] [--ingest-rate 2000] [--report-rate 400] [--ingest-rounds 3] [--ingest-warmup 3]
 *   NATS_URL (default nats://127.0.0.1:4222) names the NATS server.
 */
import { randomBytes, randomInt } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { sql } from 'drizzle-orm';
import { pino } from 'pino';
import { openDatabase } from '../src/db/open.ts';
import { createServices } from '../src/composition/services.ts';
import { randomToken } from '../src/lib/ids.ts';
import { ResendStore } from '../simulator/resend-store.ts';
import { connectFleet, closeFleet, percentile, reportLoad, type Credentials } from './lib/mqtt-load.ts';
import { cpuMsOf } from './lib/mqtt-proc.ts';
import { seedMqttDevices } from './lib/mqtt-seed.ts';
import { loggedProblems, startOurs } from './lib/mqtt-servers.ts';
import { benchRun } from './lib/run.ts';
import { benchArgs, intArg as benchInt } from './lib/args.ts';

const NAME = 'cluster';
const args = benchArgs(NAME, {
  devices: { type: 'string', default: '2000' },
  rate: { type: 'string', default: '100' },
  duration: { type: 'string', default: '10' },
  'ingest-devices': { type: 'string', default: '200' },
  'ingest-rate': { type: 'string', default: '2000' },
  'report-rate': { type: 'string', default: '400' },
  'ingest-rounds': { type: 'string', default: '3' },
  'ingest-warmup': { type: 'string', default: '3' },
});
const intArg = (name: string, raw: string | undefined, min: number, max: number) => benchInt(NAME, name, raw, min, max);
const FAILOVER_DEVICES = intArg('devices', args.devices, 10, 20_000);
const RATE = intArg('rate', args.rate, 1, 2_000);
const DURATION = intArg('duration', args.duration, 2, 600);
const INGEST_DEVICES = intArg('ingest-devices', args['ingest-devices'], 1, 10_000);
const INGEST_RATE = intArg('ingest-rate', args['ingest-rate'], 1, 50_000);
const REPORT_RATE = intArg('report-rate', args['report-rate'], 1, 20_000);
const INGEST_ROUNDS = intArg('ingest-rounds', args['ingest-rounds'], 1, 20);
const INGEST_WARMUP = intArg('ingest-warmup', args['ingest-warmup'], 1, 60);
const RT_DEVICES = 50;

const databaseUrl = process.env.DATABASE_URL?.trim();
if (!databaseUrl) {
  console.error('bench/cluster: cluster mode needs PostgreSQL: set DATABASE_URL=postgres://…');
  process.exit(2);
}
const natsUrl = process.env.NATS_URL?.trim() || 'nats://127.0.0.1:4222';
const frame = benchRun(NAME, 30);
const tmp = frame.tmp;
const problems: string[] = [];
const clusterName = `bench${randomBytes(4).toString('hex')}`;
const jwtSecret = randomToken(48);
/** The nodes' /metrics token: the failover counts the resends matched to a receipt (docs/metrics.md). */
const metricsToken = randomToken(24);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmt = (v: number, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : '–');

/** The sum of `iot_messages_dropped_total{reason="duplicate"}` a node reports. */
async function droppedAsDuplicate(base: string): Promise<number> {
  const res = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } });
  if (!res.ok) throw new Error(`GET /metrics: ${res.status}`);
  let n = 0;
  for (const line of (await res.text()).split('\n'))
    if (line.startsWith('iot_messages_dropped_total{') && line.includes('reason="duplicate"'))
      n += Number(line.slice(line.lastIndexOf(' ') + 1));
  return n;
}

/** One server process: alone (no NATS) or a node of the run's cluster. */
async function startNode(name: string, cluster: boolean, extra: Record<string, string> = {}) {
  const started = await startOurs({
    dataDir: path.join(tmp, `data-${name}`),
    databaseUrl,
    logFile: path.join(tmp, `${name}.log`),
    env: {
      LOG_LEVEL: 'warn',
      JWT_SECRET: jwtSecret,
      MQTT_RATE_LIMIT: '100000',
      // On every node, alone or clustered, so the capacity ratio compares like with like.
      METRICS_TOKEN: metricsToken,
      ...(cluster ? { NATS_URL: natsUrl, CLUSTER_NAME: clusterName, NODE_ID: name } : {}),
      ...extra,
    },
  });
  return { name, ...started };
}
type Node = Awaited<ReturnType<typeof startNode>>;

/** Server CPU per report and latency of `rate` reports/s for DURATION s into `node` (after a 2 s warm-up). */
async function ingestInto(node: Node, credentials: Credentials[]) {
  const fleet = await connectFleet({ port: node.port, credentials, concurrency: 100, timeoutMs: 30_000 });
  if (fleet.clients.length !== credentials.length)
    problems.push(`ingest into ${node.name}: ${fleet.clients.length}/${credentials.length} connected`);
  let seq = 0;
  const payload = () => JSON.stringify({ temperature: 20 + (seq++ % 100) / 10 });
  // Untimed first (--ingest-warmup s): the devices just moved from the other node, whose first reports there cost
  // once (look-ups, caches); the capacity is the steady state's.
  await reportLoad({
    clients: fleet.clients,
    rate: INGEST_RATE,
    warmupS: 1,
    durationS: INGEST_WARMUP,
    payload,
    graceMs: 10_000,
  });
  const cpu0 = cpuMsOf(node.child.pid);
  const run = await reportLoad({
    clients: fleet.clients,
    rate: INGEST_RATE,
    warmupS: 0,
    durationS: DURATION,
    payload,
    graceMs: 15_000,
  });
  const cpu = cpuMsOf(node.child.pid) - cpu0;
  await closeFleet(fleet.clients);
  if (run.acked !== run.sent) problems.push(`ingest into ${node.name}: ${run.acked}/${run.sent} acknowledged`);
  return {
    cpuPerReport: cpu / Math.max(1, run.acked),
    p50: percentile(run.latencies, 50),
    p99: percentile(run.latencies, 99),
    rate: run.rate,
  };
}

/** A device that answers every command at once (`command/reply/<id>`, device-protocol.md §10). */
async function answeringDevice(port: number, c: Credentials, i: number): Promise<MqttClient> {
  const client = await mqtt.connectAsync({
    host: '127.0.0.1',
    port,
    username: c.username,
    password: c.password,
    clientId: `rt-${i}`,
    clean: true,
    reconnectPeriod: 0,
  });
  client.on('error', () => {});
  client.on('message', (topic, payload) => {
    const m = /^command\/send\/(\d+)$/.exec(topic);
    if (!m) return;
    const cmd = JSON.parse(payload.toString()) as { method: string };
    client.publish(`command/reply/${m[1]}`, JSON.stringify({ method: cmd.method, params: { ok: true } }), { qos: 1 });
  });
  await client.subscribeAsync(['command/send/+', 'attributes/push'], { qos: 1 });
  return client;
}

/**
 * Calls at RATE/s through node A (cross-node) and through node B (same node), in alternating one-second
 * blocks: the cluster receives RATE calls a second, as the goal states, and both paths see the same
 * conditions over the run. Latencies in ms.
 */
async function roundTrips(
  a: Node,
  b: Node,
  devices: Credentials[],
  call: (base: string, d: Credentials) => Promise<boolean>,
) {
  // Untimed warm-up through both nodes: the first calls of a path pay for compiling its code, preparing
  // its statements on each pooled connection and opening its NATS subscriptions, which is not the steady
  // round trip the goal is about.
  await Promise.all(devices.flatMap((d) => [call(a.base, d), call(b.base, d)].map((p) => p.catch(() => false))));
  const lat = { cross: [] as number[], same: [] as number[] };
  let failed = 0;
  // DURATION seconds through each node.
  const total = 2 * RATE * DURATION;
  const started = performance.now();
  const inflight: Promise<void>[] = [];
  for (let k = 0; k < total; k++) {
    const due = started + (k * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const which = Math.floor(k / RATE) % 2 === 0 ? 'cross' : 'same';
    const node = which === 'cross' ? a : b;
    const d = devices[k % devices.length]!;
    const t0 = performance.now();
    inflight.push(
      call(node.base, d).then(
        (ok) => {
          if (ok) lat[which].push(performance.now() - t0);
          else failed++;
        },
        () => void failed++,
      ),
    );
  }
  await Promise.all(inflight);
  const stats = (v: number[]) => {
    const s = Float64Array.from(v).sort();
    return { n: s.length, p50: percentile(s, 50), p99: percentile(s, 99) };
  };
  return { cross: stats(lat.cross), same: stats(lat.same), failed };
}

const deviceCall = (base: string, d: Credentials, pathPart: string, body: unknown) =>
  fetch(`${base}/app/device/v1/${d.username}/${pathPart}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'project-key': d.password },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  }).then(async (r) => {
    const json = (await r.json()) as { result?: boolean; info?: { state?: string } };
    return (
      r.status === 200 && json.result === true && (pathPart !== 'command/sync/send' || json.info?.state === 'replied')
    );
  });

let database: Awaited<ReturnType<typeof openDatabase>> | undefined;
let projectId: string | undefined;
const nodes: Node[] = [];
const stopAll = async () => {
  for (const n of nodes.splice(0)) if (n.child.alive()) await n.child.stop(10_000);
};
const lines: string[] = [];
try {
  console.log(
    `bench/cluster: cluster=${clusterName} nats=${natsUrl} failover-devices=${FAILOVER_DEVICES} rate=${RATE}/s duration=${DURATION}s ` +
      `ingest=${INGEST_DEVICES} devices × ${INGEST_RATE}/s node=${process.version} cpus=${os.cpus().length}`,
  );
  database = await openDatabase(
    { DATA_DIR: path.join(tmp, 'seed'), DATABASE_URL: databaseUrl },
    pino({ level: 'warn' }),
  );
  const db = database.db;
  const services = createServices({ db });
  const project = await services.projects.create({
    name: `bench-cluster ${new Date().toISOString()} ${randomInt(1e9)}`,
  });
  projectId = project.id;
  const seeded = await seedMqttDevices(db, project.id, INGEST_DEVICES + RT_DEVICES + FAILOVER_DEVICES);
  const creds = seeded.tokens.map((t) => ({ username: t, password: project.project_key }));
  const ingestCreds = creds.slice(0, INGEST_DEVICES);
  const rtCreds = creds.slice(INGEST_DEVICES, INGEST_DEVICES + RT_DEVICES);
  const failCreds = creds.slice(INGEST_DEVICES + RT_DEVICES);
  console.log(`seeded ${creds.length} devices in ${(seeded.ms / 1000).toFixed(1)} s`);

  // 1. Ingest: a node alone and node A of a cluster of two, all three running, measured in turn for
  // --ingest-rounds rounds (alone first, then the cluster first, …): the capacity is the median of the rounds'
  // ratios, so the drift of a shared machine (and of a growing history table) falls on both sides alike.
  const alone = await startNode('single', false);
  nodes.push(alone);
  const a = await startNode('a', true);
  nodes.push(a);
  const b = await startNode('b', true);
  nodes.push(b);
  const single: Array<Awaited<ReturnType<typeof ingestInto>>> = [];
  const clustered: Array<Awaited<ReturnType<typeof ingestInto>>> = [];
  for (let r = 0; r < INGEST_ROUNDS; r++) {
    for (const which of r % 2 === 0 ? ['single', 'cluster'] : ['cluster', 'single']) {
      if (which === 'single') single.push(await ingestInto(alone, ingestCreds));
      else clustered.push(await ingestInto(a, ingestCreds));
    }
  }
  await alone.child.stop(10_000);
  nodes.splice(nodes.indexOf(alone), 1);
  const median = (xs: number[]) => {
    const sorted = [...xs].sort((x, y) => x - y);
    const mid = sorted.length >> 1;
    return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  };
  const summary = (runs: typeof single) => ({
    cpuPerReport: median(runs.map((x) => x.cpuPerReport)),
    p50: median(runs.map((x) => x.p50)),
    p99: median(runs.map((x) => x.p99)),
  });
  const inCluster = summary(clustered);
  const base = summary(single);
  const roundRatios = single.map((x, i) => x.cpuPerReport / clustered[i]!.cpuPerReport);
  const capacity = median(roundRatios);
  console.log(
    `[ingest] CPU per report, single / cluster by round: ${single.map((x, i) => `${fmt(x.cpuPerReport, 3)} / ${fmt(clustered[i]!.cpuPerReport, 3)}`).join('; ')}`,
  );

  // 2. Round trips, devices on node B.
  const rtClients = await Promise.all(rtCreds.map((c, i) => answeringDevice(b.port, c, i)));
  await sleep(1_500); // the session directory and presence settle
  const commands = await roundTrips(a, b, rtCreds, (base, d) =>
    deviceCall(base, d, 'command/sync/send', { method: 'ping', params: {}, wait: 10, timeout: 10 }),
  );
  const pushes = await roundTrips(a, b, rtCreds, (base, d) => deviceCall(base, d, 'attributes', { target: 1 }));
  await closeFleet(rtClients);
  if (commands.failed || pushes.failed)
    problems.push(`round trips: ${commands.failed} commands and ${pushes.failed} pushes failed`);

  // 3. Failover: devices on B that know A too; reports numbered; SIGKILL B.
  let acked = 0;
  const ackedSeqs: number[] = [];
  let nextSeq = 0;
  const failClients: MqttClient[] = [];
  for (let i = 0; i < failCreds.length; i += 100) {
    const part = failCreds.slice(i, i + 100);
    failClients.push(
      ...(await Promise.all(
        part.map((c, j) =>
          mqtt.connectAsync({
            servers: [
              { host: '127.0.0.1', port: b.port },
              { host: '127.0.0.1', port: a.port },
            ],
            username: c.username,
            password: c.password,
            clientId: `fo-${i + j}`,
            clean: true,
            keepalive: 30,
            reconnectPeriod: 200 + randomInt(800),
            connectTimeout: 10_000,
            // As the simulator's devices: resends carry DUP (device-protocol.md §3.3).
            outgoingStore: new ResendStore(),
          }),
        ),
      )),
    );
  }
  for (const c of failClients) c.on('error', () => {});
  let streaming = true;
  const stream = (async () => {
    const started = performance.now();
    let k = 0;
    while (streaming) {
      const due = started + (k * 1000) / REPORT_RATE;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const client = failClients[k % failClients.length]!;
      k++;
      const seq = nextSeq++;
      // Published even while reconnecting: mqtt.js keeps QoS 1 messages in its store and sends them once connected.
      client.publish('attributes', JSON.stringify({ seq }), { qos: 1 }, (err) => {
        if (err) return;
        acked++;
        ackedSeqs.push(seq);
      });
    }
  })();
  await sleep(3_000);
  const reconnected = new Set<number>();
  failClients.forEach((c, i) => c.on('connect', () => reconnected.add(i)));
  const killedAt = performance.now();
  const sentAtKill = nextSeq;
  const ackedAtKill = ackedSeqs.length;
  process.kill(b.child.pid, 'SIGKILL'); // a crash: no graceful stop
  let allConnectedMs = Number.NaN;
  let allOnlineMs = Number.NaN;
  const deadline = killedAt + 60_000;
  const failIds = failCreds.map((c) => c.username);
  while (performance.now() < deadline && Number.isNaN(allOnlineMs)) {
    if (Number.isNaN(allConnectedMs) && reconnected.size === failClients.length)
      allConnectedMs = performance.now() - killedAt;
    if (!Number.isNaN(allConnectedMs)) {
      const [row] = (await db.execute(sql`
        select count(*)::int as n from devices
        where project_id = ${project.id} and online and session_node = 'a' and access_token in ${failIds}`)) as unknown as Array<{
        n: number;
      }>;
      if (row && row.n === failClients.length) allOnlineMs = performance.now() - killedAt;
    }
    await sleep(100);
  }
  await sleep(2_000);
  streaming = false;
  await stream;
  // Wait for the last acknowledgements, then for the server's write-behind to reach the database.
  await sleep(3_000);
  await closeFleet(failClients);
  await sleep(2_000);
  const rows = (await db.execute(sql`
    select (num)::bigint as seq, count(*)::int as n from attribute_history
    where project_id = ${project.id} and identifier = 'seq' group by num`)) as unknown as Array<{
    seq: string;
    n: number;
  }>;
  const stored = new Map(rows.map((r) => [Number(r.seq), r.n]));
  let lost = 0;
  let duplicated = 0;
  /** Of the duplicated, those sent before the kill and acknowledged after it (in flight at the kill). */
  let inFlightTwice = 0;
  const ackedAfterKill = new Set(ackedSeqs.slice(ackedAtKill));
  for (const s of ackedSeqs) {
    const n = stored.get(s) ?? 0;
    if (n === 0) lost++;
    else if (n > 1) {
      duplicated++;
      if (s < sentAtKill && ackedAfterKill.has(s)) inFlightTwice++;
    }
  }
  if (lost) problems.push(`failover: ${lost} acknowledged reports are not in history`);
  if (duplicated) problems.push(`failover: ${duplicated} acknowledged reports are in history more than once`);
  if (Number.isNaN(allConnectedMs))
    problems.push(`failover: ${reconnected.size}/${failClients.length} reconnected within 60 s`);
  if (Number.isNaN(allOnlineMs)) problems.push('failover: not every device online on node a within 60 s');
  // Resends of reports node B stored before it was killed, acknowledged by A without storing them again
  // (device-protocol.md §3.3): the path "duplicated 0" depends on.
  const matched = await droppedAsDuplicate(a.base);
  await stopAll();

  const row = (label: string, ...cells: string[]) =>
    lines.push(label.padEnd(46) + cells.map((c) => c.padStart(12)).join(''));
  row('', 'cluster', 'single', 'ratio');
  row(
    `ingest: server CPU per report (ms) @${INGEST_RATE}/s`,
    fmt(inCluster.cpuPerReport, 3),
    fmt(base.cpuPerReport, 3),
  );
  row(`ingest: capacity (median of ${INGEST_ROUNDS} rounds' single / cluster)`, '', '', fmt(capacity));
  row('  (the rounds)', '', '', roundRatios.map((x) => fmt(x)).join(' '));
  row('ingest: report latency p50 (ms)', fmt(inCluster.p50), fmt(base.p50));
  row('ingest: report latency p99 (ms)', fmt(inCluster.p99), fmt(base.p99));
  lines.push('  (goal: capacity ≥ 0.9)');
  row('', 'cross-node', 'same node', 'ratio');
  row(
    `sync command round trip p50 (ms) @${RATE}/s`,
    fmt(commands.cross.p50),
    fmt(commands.same.p50),
    fmt(commands.cross.p50 / commands.same.p50),
  );
  row(
    `sync command round trip p99 (ms) @${RATE}/s`,
    fmt(commands.cross.p99),
    fmt(commands.same.p99),
    fmt(commands.cross.p99 / commands.same.p99),
  );
  row(
    `attribute push p50 (ms) @${RATE}/s`,
    fmt(pushes.cross.p50),
    fmt(pushes.same.p50),
    fmt(pushes.cross.p50 / pushes.same.p50),
  );
  row(
    `attribute push p99 (ms) @${RATE}/s`,
    fmt(pushes.cross.p99),
    fmt(pushes.same.p99),
    fmt(pushes.cross.p99 / pushes.same.p99),
  );
  const worst = Math.max(commands.cross.p99, pushes.cross.p99);
  lines.push(
    `  (goal: cross-node p99 ≤ 20 ms at ${RATE} commands/s: ${worst <= 20 ? 'met' : 'NOT met'}, worst ${fmt(worst)} ms)`,
  );
  row('', 'measured');
  row(`failover: ${failClients.length} devices reconnected (s)`, fmt(allConnectedMs / 1000, 1));
  row('failover: all online on the other node (s)', fmt(allOnlineMs / 1000, 1));
  row('failover: reports acknowledged', String(acked));
  row('failover: acknowledged reports lost', String(lost));
  row('failover: acknowledged reports duplicated', String(duplicated));
  row('failover: of those, in flight at the kill', String(inFlightTwice));
  row('failover: resends matched to a receipt, not stored again', String(matched));
  lines.push('  (goal: all online elsewhere ≤ 20 s; lost and duplicated must be 0)');
  if (!(capacity >= 0.9)) problems.push(`GOAL MISSED: ingest capacity ${fmt(capacity)} (goal ≥ 0.9)`);
  if (!(worst <= 20)) problems.push(`GOAL MISSED: cross-node p99 ${fmt(worst)} ms (goal ≤ 20 ms)`);
  if (!(allOnlineMs <= 20_000))
    problems.push(`GOAL MISSED: failover online after ${fmt(allOnlineMs / 1000, 1)} s (goal ≤ 20 s)`);
  console.log('\n' + lines.join('\n'));
  for (const f of ['a', 'single']) {
    const logged = loggedProblems(path.join(tmp, `${f}.log`));
    if (logged.error) problems.push(`${f} logged ${logged.error} errors: ${logged.samples.join(' | ')}`);
  }
} catch (err) {
  problems.push(`run aborted: ${(err as Error).stack ?? String(err)}`);
} finally {
  await stopAll();
  if (database && projectId) {
    try {
      await createServices({ db: database.db }).projects.delete(projectId);
    } catch (err) {
      problems.push(`cleanup: ${(err as Error).message}`);
    }
  }
  await database?.close();
}
frame.finish(problems);
