/**
 * bench/tcp — raw TCP devices (device-protocol.md §6) against MQTT at the same message rate, in one
 * run. 2,000 devices send 64-byte binary frames on a hex data stream, first as raw TCP links, then
 * as MQTT clients publishing the same frames on `data/<identifier>` (QoS 1). Each frame carries its
 * send time; the server side measures write → recorded (the `device.data` event follows the
 * database write) and counts frames recorded per second. The TCP figure includes the frame gap the
 * listener must wait before it knows a message is complete (the device type's `tcp_frame_gap_ms`,
 * `--gap`); "added" subtracts it. See bench/README.md.
 *
 *   npm run bench:tcp -- [--devices 2000] [--rate 2000] [--duration 10] [--warmup 2] [--gap 10]
 *   DATABASE_URL=postgres://... npm run bench:tcp      # PostgreSQL instead of embedded PGlite
 *
 * The server (services, MQTT broker, TCP listener) runs in this process; the devices run in a child
 * process (bench/lib/tcp-load.ts), so the two event loops do not share a thread.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { sql } from 'drizzle-orm';
import { pino } from 'pino';
import { createAdmission } from '../mqtt-broker/core/admission.ts';
import { createBroker } from '../mqtt-broker/mqtt/broker.ts';
import { createTcpListener } from '../mqtt-broker/tcp/listener.ts';
import { openDatabase } from '../src/db/open.ts';
import { devices as devicesTable } from '../src/db/schema/index.ts';
import { newId, randomToken, shortCode } from '../src/lib/ids.ts';
import { createServices } from '../src/composition/services.ts';
import { benchArgs, intArg as benchInt } from './lib/args.ts';

const args = benchArgs('tcp', {
  devices: { type: 'string', default: '2000' },
  rate: { type: 'string', default: '2000' },
  duration: { type: 'string', default: '10' },
  warmup: { type: 'string', default: '2' },
  gap: { type: 'string', default: '10' },
});
const intArg = (name: string, raw: string | undefined, min: number, max: number) =>
  benchInt('tcp', name, raw, min, max);
const N = intArg('devices', args.devices, 1, 20_000);
const RATE = intArg('rate', args.rate, 1, 50_000);
const DURATION = intArg('duration', args.duration, 1, 300);
const WARMUP = intArg('warmup', args.warmup, 0, 60);
const GAP = intArg('gap', args.gap, 10, 10_000);
const FRAME = 64;
const IDENTIFIER = 'frames';
/** How long frames may take to be recorded after the last one was sent. */
const GRACE_MS = 20_000;

// The whole run is bounded: a stuck phase must never hold the machine.
const watchdog = setTimeout(() => {
  console.error('bench/tcp: watchdog: the run took longer than 15 minutes');
  process.exit(3);
}, 15 * 60_000);
watchdog.unref();

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const nowMs = () => performance.timeOrigin + performance.now();

function percentile(sorted: Float64Array, p: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

interface PhaseResult {
  mode: 'tcp' | 'mqtt';
  connected: number;
  connectMs: number;
  sentInWindow: number;
  recordedInWindow: number;
  recordedTotal: number;
  sentTotal: number;
  perSecond: number;
  p50: number;
  p99: number;
  max: number;
  serverCpuPct: number;
  /** Messages that held more than one frame. */
  merged: number;
  /** The server's event loop delay over the window (p99, max), ms: what stalls every transport alike. */
  loopP99: number;
  loopMax: number;
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'bench-tcp-'));
const log = pino({ level: 'silent' });
const database = await openDatabase({ DATA_DIR: path.join(tmp, 'data'), DATABASE_URL: process.env.DATABASE_URL }, log);
const services = createServices({ db: database.db });
services.presence.start();

let projectId: string | undefined;
try {
  const project = await services.projects.create({ name: `bench tcp ${Date.now()}` });
  projectId = project.id;
  const scope = { projectId: project.id };
  const type = await services.deviceTypes.create(scope, {
    name: 'bench dtu',
    conn_protocol: 'tcp',
    tcp_frame_gap_ms: GAP,
  });
  await services.deviceTypes.createDataStream(scope, type.id, {
    identifier: IDENTIFIER,
    format: 'hex',
    tcp_bound: true,
  });

  // Devices straight into the table: the bench measures the transports, not provisioning.
  const seeded = performance.now();
  const tokens: string[] = [];
  const now = Date.now();
  for (let start = 0; start < N; start += 2000) {
    const rows: (typeof devicesTable.$inferInsert)[] = [];
    for (let i = start; i < Math.min(N, start + 2000); i++) {
      const accessToken = randomToken(20);
      tokens.push(accessToken);
      rows.push({
        id: newId(now - N + i),
        projectId: project.id,
        typeId: type.id,
        name: `tcp bench ${i + 1}`,
        accessToken,
        viewToken: randomToken(20),
        deviceCode: shortCode(10),
        createTime: now,
        updateTime: now,
      });
    }
    await database.db.insert(devicesTable).values(rows);
  }
  const tokensFile = path.join(tmp, 'tokens.txt');
  writeFileSync(tokensFile, `${tokens.join('\n')}\n`);
  console.log(
    `bench/tcp: load average ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')} on ${os.cpus().length} CPUs`,
  );
  console.log(
    `bench/tcp: ${database.driver}, ${N} devices seeded in ${(performance.now() - seeded).toFixed(0)} ms; ${RATE} frames/s of ${FRAME} bytes, ${WARMUP} s warm-up + ${DURATION} s per transport, frame gap ${GAP} ms`,
  );

  // Every simulated device connects from 127.0.0.1: that one address may hold them all (mqtt-broker/core/admission.ts).
  const admission = createAdmission({
    pendingPerAddress: 1_000_000,
    pendingMax: 1_000_000,
    loginRate: 1_000_000,
    loginBurst: 1_000_000,
  });
  const broker = await createBroker({ services, logger: log, admission });
  const mqttServer = net.createServer((socket) => broker.handleConnection(socket));
  await new Promise<void>((resolve) => mqttServer.listen(0, '127.0.0.1', resolve));
  const tcp = createTcpListener({ services, logger: log, admission });
  const tcpAddress = await tcp.listen(0, '127.0.0.1');

  // Every recorded upstream frame: its latency from the send time it carries.
  // A TCP message holds several frames when the server read them together (it was stalled for longer than a
  // device's send interval, so they arrived within the gap): each frame is counted and timed all the same.
  let phase:
    | { latencies: number[]; window: [number, number] | undefined; recorded: number; inWindow: number; merged: number }
    | undefined;
  services.bus.on('device.data', (e) => {
    if (e.direction !== 'up' || !phase || e.payload.length % FRAME !== 0) return;
    const at = nowMs();
    if (e.payload.length > FRAME) phase.merged++;
    for (let offset = 0; offset < e.payload.length; offset += FRAME) {
      const sent = e.payload.readDoubleBE(offset);
      phase.recorded++;
      if (phase.window && sent >= phase.window[0] && sent < phase.window[1]) {
        phase.inWindow++;
        phase.latencies.push(at - sent);
      }
    }
  });

  async function runPhase(mode: 'tcp' | 'mqtt'): Promise<PhaseResult> {
    phase = { latencies: [], window: undefined, recorded: 0, inWindow: 0, merged: 0 };
    const port = mode === 'tcp' ? tcpAddress.port : (mqttServer.address() as AddressInfo).port;
    const config = {
      mode,
      port,
      projectKey: project.project_key,
      tokensFile,
      rate: RATE,
      warmup: WARMUP,
      duration: DURATION,
      frameSize: FRAME,
      concurrency: 100,
      identifier: IDENTIFIER,
    };
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(root, 'bench/lib/tcp-load.ts'), JSON.stringify(config)],
      { cwd: root, stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const events: Array<Record<string, unknown>> = [];
    const lines = createInterface({ input: child.stdout });
    const waiters: Array<() => void> = [];
    lines.on('line', (line) => {
      try {
        const e = JSON.parse(line) as Record<string, unknown>;
        events.push(e);
        if (e.event === 'window') phase!.window = [e.start as number, e.end as number];
        for (const w of waiters.splice(0)) w();
      } catch {
        console.error(`bench/tcp: load: ${line}`);
      }
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const waitEvent = async (name: string) => {
      for (;;) {
        const found = events.find((e) => e.event === name);
        if (found) return found;
        if (events.some((e) => e.event === 'error'))
          throw new Error(`load generator: ${JSON.stringify(events.find((e) => e.event === 'error'))}`);
        if (child.exitCode !== null) throw new Error(`load generator exited (${child.exitCode}) before "${name}"`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 500);
        });
      }
    };
    const connected = await waitEvent('connected');
    const registered = performance.now() + 60_000;
    while (services.sessions.size < (connected.devices as number) && performance.now() < registered)
      await new Promise((r) => setTimeout(r, 20));
    const connectMs = (connected.ms as number) + 0;
    const sessionsReady = services.sessions.size;
    child.stdin.write('go\n');
    const cpuBefore = process.cpuUsage();
    const wallBefore = performance.now();
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const sent = await waitEvent('sent');
    loop.disable();
    const cpu = process.cpuUsage(cpuBefore);
    const wall = performance.now() - wallBefore;
    const total = sent.total as number;
    const deadline = performance.now() + GRACE_MS;
    while (phase.recorded < total && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await exited;
    const sorted = Float64Array.from(phase.latencies).sort();
    const result: PhaseResult = {
      mode,
      connected: Math.min(connected.devices as number, sessionsReady),
      connectMs,
      sentInWindow: sent.window as number,
      recordedInWindow: phase.inWindow,
      recordedTotal: phase.recorded,
      sentTotal: total,
      perSecond: phase.inWindow / DURATION,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      max: sorted.length ? sorted[sorted.length - 1]! : Number.NaN,
      serverCpuPct: ((cpu.user + cpu.system) / 1000 / wall) * 100,
      merged: phase.merged,
      loopP99: loop.percentile(99) / 1e6,
      loopMax: loop.max / 1e6,
    };
    phase = undefined;
    // Sessions of this phase must be gone before the next one logs the same devices in.
    const offline = performance.now() + 10_000;
    while (services.sessions.size > 0 && performance.now() < offline) await new Promise((r) => setTimeout(r, 50));
    return result;
  }

  const results = [await runPhase('tcp'), await runPhase('mqtt')];
  const stats = tcp.stats();
  await tcp.close();
  await broker.close();
  await new Promise((r) => mqttServer.close(r));
  await services.dataStreams.stop();

  const [t, m] = results as [PhaseResult, PhaseResult];
  const f = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : '-');
  console.log('');
  console.log(
    '| transport | devices | connect s | sent | recorded | frames/s recorded | p50 ms | p99 ms | max ms | p99 − gap ms | server CPU % | loop delay p99/max ms | merged messages |',
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of results) {
    const net = r.mode === 'tcp' ? f(r.p99 - GAP) : f(r.p99);
    console.log(
      `| ${r.mode} | ${r.connected} | ${(r.connectMs / 1000).toFixed(1)} | ${r.sentInWindow} | ${r.recordedInWindow} | ${r.perSecond.toFixed(0)} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.max)} | ${net} | ${r.serverCpuPct.toFixed(0)} | ${f(r.loopP99)}/${f(r.loopMax)} | ${r.merged} |`,
    );
  }
  console.log('');
  console.log(
    `TCP/MQTT: frames/s recorded ${(t.perSecond / m.perSecond).toFixed(2)}, p99 ${(t.p99 / m.p99).toFixed(2)}, p99 without the frame gap ${((t.p99 - GAP) / m.p99).toFixed(2)}`,
  );
  console.log(
    `TCP listener: ${JSON.stringify({ logins: stats.logins, loginFailures: stats.loginFailures, messages: stats.messages, recorded: stats.recorded, rateLimited: stats.rateLimited, dropped: stats.dropped, errors: stats.errors })}`,
  );
  const lost = results.filter((r) => r.recordedTotal < r.sentTotal || r.connected < N);
  if (lost.length) {
    for (const r of lost)
      console.error(
        `bench/tcp: ${r.mode}: ${r.connected}/${N} connected, ${r.recordedTotal}/${r.sentTotal} frames recorded`,
      );
    process.exitCode = 1;
  }
} finally {
  if (projectId && database.driver === 'postgres') {
    await database.db
      .execute(sql`delete from projects where id = ${projectId}`)
      .catch((err: unknown) => console.error('bench/tcp: cleanup failed', err));
  }
  await services.presence.stop().catch(() => undefined);
  await database.close();
  rmSync(tmp, { recursive: true, force: true });
}
process.exit(process.exitCode ?? 0);
