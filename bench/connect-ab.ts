/**
 * bench/connect-ab — the broker's CPU per MQTT connect and disconnect of two revisions, side by side:
 * revision `--base` ("A", a git worktree made here) against the current working tree ("B"). Both servers
 * run at once on PostgreSQL (a fresh database each), are warmed up alike, and take interleaved rounds
 * (A B B A A B …) of fresh devices connecting for the first time, then rounds of the same devices
 * reconnecting. See bench/README.md for why it exists and how the verdict is reached.
 *
 *   DATABASE_URL=postgres://... npm run bench:connect-ab -- --base <git rev> [--rounds 6]
 *       [--devices-per-round 5000] [--reconnect-rounds 4] [--concurrency 50]
 *
 * It exits 0 whatever the comparison says (it is a measuring tool, not a gate) and non-zero on an error:
 * a refused CONNACK or SUBACK, a connection lost while held, a server that exits or logs errors, a seed
 * that fails.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { sql } from 'drizzle-orm';
import { pino } from 'pino';
import postgres from 'postgres';
import { benchArgs, intArg as benchInt } from './lib/args.ts';
import {
  BENCH_ADMISSION,
  cpuMsOf,
  ephemeralPorts,
  freePort,
  openFilesLimit,
  spawnEntry,
  tail,
  waitForPort,
  type Child,
} from './lib/mqtt-proc.ts';
import { ensureAlive, loggedProblems } from './lib/mqtt-servers.ts';
import { benchRun } from './lib/run.ts';

const NAME = 'connect-ab';
const root = path.resolve(import.meta.dirname, '..');
const thisFile = import.meta.filename;
/** argv[2] of the child process that seeds one checkout's database with that checkout's own code. */
const SEED_CHILD = '--seed-child';

/** Devices each server connects once (and disconnects) before the measured rounds. */
const WARMUP_DEVICES = 2000;
/** How long the connections are held before DISCONNECT, and how long after the last close the CPU is read. */
const HOLD_MS = 2000;
const SETTLE_MS = 1500;
/** Quiet time before each round, so the last round's deferred work (presence flush every second) is over. */
const PAUSE_MS = 1000;
const CONNECT_TIMEOUT_MS = 30_000;
const CLOSE_TIMEOUT_MS = 30_000;
/** File descriptors besides the sockets of a round: logs, pipes, the database pool, Node's own. */
const FD_MARGIN = 256;

// ---------------------------------------------------------------------------------------------
// MQTT 3.1.1 by hand: the client stays cheap, so the server's CPU dominates the machine's.

function mqttString(s: string): Buffer {
  const b = Buffer.from(s);
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
}

function mqttPacket(firstByte: number, body: Buffer): Buffer {
  const len: number[] = [];
  let n = body.length;
  do {
    let digit = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) digit |= 128;
    len.push(digit);
  } while (n > 0);
  return Buffer.concat([Buffer.from([firstByte, ...len]), body]);
}

/** CONNECT, protocol level 4, flags: user name + password + clean session, keep-alive 120 s. */
function connectPacket(clientId: string, username: string, password: string): Buffer {
  return mqttPacket(
    0x10,
    Buffer.concat([
      mqttString('MQTT'),
      Buffer.from([4, 0xc2, 0, 120]),
      mqttString(clientId),
      mqttString(username),
      mqttString(password),
    ]),
  );
}

/** SUBSCRIBE packet id 1 to `attributes/response` at QoS 0 (what a device does after connecting). */
const SUBSCRIBE = mqttPacket(
  0x82,
  Buffer.concat([Buffer.from([0, 1]), mqttString('attributes/response'), Buffer.from([0])]),
);
const DISCONNECT = Buffer.from([0xe0, 0]);
const CONNACK_CODES = [
  'accepted',
  'unacceptable protocol version',
  'identifier rejected',
  'server unavailable',
  'bad user name or password',
  'not authorized',
];

/**
 * One device: TCP connect, CONNECT → CONNACK (accepted), SUBSCRIBE → SUBACK (granted); answers the open
 * socket. Anything else rejects. `onLost` is told when the socket errs or closes afterwards.
 */
function connectDevice(
  port: number,
  clientId: string,
  username: string,
  password: string,
  onLost: (socket: net.Socket, why: string) => void,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    let buf: Buffer = Buffer.alloc(0);
    let stage: 'connack' | 'suback' | 'open' = 'connack';
    const fail = (why: string) => {
      if (stage === 'open') return onLost(socket, why);
      clearTimeout(timer);
      stage = 'open'; // report once
      socket.destroy();
      reject(new Error(`${clientId}: ${why}`));
    };
    const timer = setTimeout(() => fail(`no CONNACK/SUBACK within ${CONNECT_TIMEOUT_MS} ms`), CONNECT_TIMEOUT_MS);
    socket.once('connect', () => socket.write(connectPacket(clientId, username, password)));
    socket.on('error', (err) => fail(`socket error: ${err.message}`));
    socket.on('close', () => fail(`closed by the server while waiting for the ${stage.toUpperCase()}`));
    const onData = (data: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, data]) : data;
      if (stage === 'connack') {
        if (buf.length < 4) return;
        if (buf[0] !== 0x20 || buf[1] !== 2) return fail(`expected a CONNACK, got ${buf.toString('hex')}`);
        if (buf[3] !== 0)
          return fail(`CONNACK refused: return code ${buf[3]} (${CONNACK_CODES[buf[3]!] ?? 'unknown'})`);
        buf = buf.subarray(4);
        stage = 'suback';
        socket.write(SUBSCRIBE);
      }
      if (stage === 'suback') {
        if (buf.length < 5) return;
        if (buf[0] !== 0x90 || buf[1] !== 3) return fail(`expected a SUBACK, got ${buf.toString('hex')}`);
        if (buf[4] === 0x80) return fail('SUBACK refused the subscription to attributes/response');
        clearTimeout(timer);
        stage = 'open';
        socket.off('data', onData);
        socket.on('data', () => {}); // whatever the server sends later is read and dropped
        socket.removeAllListeners('close');
        resolve(socket);
      }
    };
    socket.on('data', onData);
  });
}

// ---------------------------------------------------------------------------------------------
// The seed child: runs with cwd = a checkout, with that checkout's code (its schema and services).

interface Seeded {
  key: string;
  tokens: string[];
}

async function seedChild(n: number, out: string): Promise<void> {
  const dir = process.cwd();
  const load = (rel: string) => import(pathToFileURL(path.join(dir, rel)).href);
  // The composition root moved from src/services.ts to src/composition/services.ts; a base revision
  // from before the move still has the old path, so both layouts are accepted.
  const servicesFile = existsSync(path.join(dir, 'src/composition/services.ts'))
    ? 'src/composition/services.ts'
    : 'src/services.ts';
  if (!existsSync(path.join(dir, 'bench/lib/mqtt-seed.ts')))
    throw new Error(`${dir} has no bench/lib/mqtt-seed.ts: the revision is older than this bench supports`);
  const { openDatabase } = (await load('src/db/open.ts')) as {
    openDatabase: (
      config: { DATA_DIR: string; DATABASE_URL: string | undefined },
      log: unknown,
    ) => Promise<{ db: { execute(q: unknown): Promise<unknown> }; close(): Promise<void> }>;
  };
  const { createServices } = (await load(servicesFile)) as {
    createServices: (deps: { db: unknown }) => {
      projects: { create(input: { name: string }): Promise<{ id: string; project_key: string }> };
    };
  };
  const { seedMqttDevices } = (await load('bench/lib/mqtt-seed.ts')) as {
    seedMqttDevices: (db: unknown, projectId: string, n: number) => Promise<{ tokens: string[] }>;
  };
  const database = await openDatabase(
    { DATA_DIR: process.env.DATA_DIR!, DATABASE_URL: process.env.DATABASE_URL },
    pino({ level: 'warn' }),
  );
  try {
    const project = await createServices({ db: database.db }).projects.create({ name: `bench ${NAME}` });
    const seeded = await seedMqttDevices(database.db, project.id, n);
    await database.db.execute(sql.raw('analyze devices'));
    const result: Seeded = { key: project.project_key, tokens: seeded.tokens };
    writeFileSync(out, JSON.stringify(result));
  } finally {
    await database.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The comparison.

interface Server {
  label: 'A' | 'B';
  dir: string;
  child: Child;
  port: number;
  seed: Seeded;
}

interface Round {
  label: 'A' | 'B';
  kind: 'warm-up' | 'first' | 'reconnect';
  devices: number;
  /** Connections (CONNECT … SUBACK) per second, wall clock. */
  rate: number;
  /** Server CPU ms per connection while connecting, while held, and for DISCONNECT until the last close + SETTLE_MS. */
  connectMs: number;
  holdMs: number;
  disconnectMs: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Connects devices [first, first + n) to `srv` (`concurrency` at a time), holds them, disconnects them all. */
async function runRound(
  srv: Server,
  kind: Round['kind'],
  first: number,
  n: number,
  concurrency: number,
): Promise<Round> {
  ensureAlive(srv.child, `${srv.label} before a round`);
  const sockets: net.Socket[] = [];
  const lost: string[] = [];
  let disconnecting = false;
  const onLost = (_socket: net.Socket, why: string) => {
    if (!disconnecting) lost.push(why);
  };
  let next = 0;
  const pid = srv.child.pid;
  const c0 = cpuMsOf(pid);
  const t0 = performance.now();
  try {
    await Promise.all(
      Array.from({ length: Math.min(concurrency, n) }, async () => {
        while (next < n) {
          const i = first + next++;
          sockets.push(await connectDevice(srv.port, `ab-${i}`, srv.seed.tokens[i]!, srv.seed.key, onLost));
        }
      }),
    );
  } catch (err) {
    for (const s of sockets) s.destroy();
    ensureAlive(srv.child, `${srv.label} ${kind} connects`);
    throw new Error(`${srv.label} (${kind} round): ${(err as Error).message}`, { cause: err });
  }
  const t1 = performance.now();
  const c1 = cpuMsOf(pid);
  await sleep(HOLD_MS);
  const c2 = cpuMsOf(pid);
  disconnecting = true;
  const closed = sockets.map((s) => new Promise<void>((r) => (s.destroyed ? r() : s.once('close', () => r()))));
  for (const s of sockets) s.end(DISCONNECT);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(closed),
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${srv.label}: connections still open ${CLOSE_TIMEOUT_MS} ms after DISCONNECT`)),
        CLOSE_TIMEOUT_MS,
      );
    }),
  ]).finally(() => clearTimeout(timer));
  await sleep(SETTLE_MS);
  const c3 = cpuMsOf(pid);
  ensureAlive(srv.child, `${srv.label} ${kind} round`);
  if (lost.length)
    throw new Error(`${srv.label}: ${lost.length} connections lost while held, e.g. ${lost.slice(0, 3).join('; ')}`);
  return {
    label: srv.label,
    kind,
    devices: n,
    rate: n / ((t1 - t0) / 1000),
    connectMs: (c1 - c0) / n,
    holdMs: (c2 - c1) / n,
    disconnectMs: (c3 - c2) / n,
  };
}

const ROW = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(10) : c.padStart(14))).join('');
const ROUND_HEADER = ROW(['rev', 'kind', 'devices', 'conn/s', 'CPU ms/conn', 'CPU ms/held', 'CPU ms/disc']);
const roundRow = (r: Round) =>
  ROW([
    r.label,
    r.kind,
    String(r.devices),
    r.rate.toFixed(0),
    r.connectMs.toFixed(3),
    r.holdMs.toFixed(3),
    r.disconnectMs.toFixed(3),
  ]);

function stats(xs: number[]): { mean: number; sd: number; n: number } {
  const mean = xs.reduce((a, x) => a + x, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1)) : NaN;
  return { mean, sd, n: xs.length };
}

/** Two-sided 95% quantiles of Student's t for 1…30 degrees of freedom (beyond: 2.0). */
const T975 = [
  12.71, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11,
  2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/**
 * The rule (Welch's t-test, one figure at a time): B is worse than A when the difference of the means
 * exceeds t × the standard error of the difference, sqrt(sdA²/nA + sdB²/nB), t the 95% quantile for the
 * Welch–Satterthwaite degrees of freedom — about 2 with 10+ rounds a side, 4.3 or more with 2 (a plain
 * "2 standard errors" flags noise when there are few rounds). For CPU "worse" is higher, for a rate lower.
 */
function compare(a: number[], b: number[], higherIsWorse: boolean) {
  const sa = stats(a);
  const sb = stats(b);
  const va = sa.sd ** 2 / sa.n;
  const vb = sb.sd ** 2 / sb.n;
  const se = Math.sqrt(va + vb);
  const df = (va + vb) ** 2 / (va ** 2 / (sa.n - 1) + vb ** 2 / (sb.n - 1));
  const t = Number.isFinite(df) ? (T975[Math.max(1, Math.floor(df)) - 1] ?? 2.0) : NaN;
  const worse = (higherIsWorse ? sb.mean - sa.mean : sa.mean - sb.mean) / se;
  const verdict =
    !Number.isFinite(worse) || !Number.isFinite(t)
      ? 'too few rounds'
      : worse > t
        ? 'B worse'
        : worse < -t
          ? 'B better'
          : 'within noise';
  return { sa, sb, ratio: sb.mean / sa.mean, z: (sb.mean - sa.mean) / se, t, verdict };
}

async function main(): Promise<void> {
  const args = benchArgs(NAME, {
    base: { type: 'string' },
    rounds: { type: 'string', default: '6' },
    'devices-per-round': { type: 'string', default: '5000' },
    'reconnect-rounds': { type: 'string', default: '4' },
    concurrency: { type: 'string', default: '50' },
  });
  const intArg = (name: string, raw: string | undefined, min: number, max: number) =>
    benchInt(NAME, name, raw, min, max);
  const ROUNDS = intArg('rounds', args.rounds, 2, 100);
  const PER_ROUND = intArg('devices-per-round', args['devices-per-round'], 1, 1_000_000);
  const RECONNECT_ROUNDS = intArg('reconnect-rounds', args['reconnect-rounds'], 0, 100);
  const CONCURRENCY = intArg('concurrency', args.concurrency, 1, 5000);
  const databaseUrl = process.env.DATABASE_URL?.trim() || undefined;
  if (!databaseUrl) {
    console.error(
      `bench/${NAME}: PostgreSQL is required: set DATABASE_URL=postgres://user@host:port/db (the run creates two ` +
        `databases of its own on that server and drops them at the end).`,
    );
    process.exit(2);
  }
  if (!args.base) {
    console.error(`bench/${NAME}: --base <git revision> is required (the revision compared with the working tree)`);
    process.exit(2);
  }
  let baseSha: string;
  try {
    baseSha = execFileSync('git', ['-C', root, 'rev-parse', '--verify', '--quiet', `${args.base}^{commit}`], {
      encoding: 'utf8',
    }).trim();
  } catch {
    console.error(`bench/${NAME}: --base ${args.base} is not a commit of this repository`);
    process.exit(2);
  }
  // This process and each server hold one socket per device of a round at once (a round is closed
  // before the next starts); the servers inherit this limit.
  const fdLimit = openFilesLimit();
  const needed = Math.max(PER_ROUND, WARMUP_DEVICES) + FD_MARGIN;
  if (fdLimit < needed) {
    console.error(
      `bench/${NAME}: the open-files limit is ${fdLimit}, and ${PER_ROUND} connections per round need at least ${needed} ` +
        `in this process and in each server (they inherit the limit). Use --devices-per-round ${fdLimit - FD_MARGIN} ` +
        `or fewer, or raise the limit first (\`ulimit -n ${Math.max(65536, PER_ROUND * 2)}\`).`,
    );
    process.exit(2);
  }
  if (ephemeralPorts() < PER_ROUND + 1000) {
    console.error(
      `bench/${NAME}: net.ipv4.ip_local_port_range gives ${ephemeralPorts()} local ports; ${PER_ROUND} connections per round need more. ` +
        `Widen the range or use fewer --devices-per-round.`,
    );
    process.exit(2);
  }

  const frame = benchRun(NAME, 60);
  const tmp = frame.tmp;
  const problems: string[] = [];
  const worktree = path.join(tmp, 'base');
  const suffix = `${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const dbNames = { A: `bench_ab_${suffix}_a`, B: `bench_ab_${suffix}_b` };
  const dbUrl = (name: string) => {
    const u = new URL(databaseUrl);
    u.pathname = `/${name}`;
    return u.toString();
  };
  let worktreeMade = false;
  const createdDbs: string[] = [];

  // Cleanup when the run ends without reaching `finally` (watchdog, SIGINT): synchronous, so a child
  // process drops the databases (the servers are killed first by bench/lib/mqtt-proc.ts's own exit hook).
  process.on('exit', () => {
    if (createdDbs.length) {
      spawnSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `import postgres from 'postgres'; const s = postgres(process.env.AB_URL, { max: 1, onnotice: () => {} });
           for (const n of process.env.AB_DBS.split(',')) await s.unsafe('drop database if exists "' + n + '" with (force)');
           await s.end();`,
        ],
        { cwd: root, env: { ...process.env, AB_URL: databaseUrl, AB_DBS: createdDbs.join(',') }, stdio: 'inherit' },
      );
    }
    if (worktreeMade) removeWorktree();
  });
  function removeWorktree() {
    for (const argv of [
      ['worktree', 'remove', '--force', worktree],
      ['worktree', 'prune'],
    ]) {
      const r = spawnSync('git', ['-C', root, ...argv], { encoding: 'utf8' });
      if (r.status !== 0 && argv[1] === 'remove' && existsSync(worktree))
        problems.push(`git worktree remove: ${r.stderr.trim()}`);
    }
    worktreeMade = false;
  }

  const admin = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  const servers: Server[] = [];
  const rounds: Round[] = [];
  try {
    const head = execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['-C', root, 'status', '--porcelain', '--untracked-files=no'], {
      encoding: 'utf8',
    }).trim();
    console.log(
      `bench/${NAME}: A = ${args.base} (${baseSha.slice(0, 10)}), B = working tree (HEAD ${head}${dirty ? ' + uncommitted changes' : ''}); ` +
        `rounds=${ROUNDS} devices-per-round=${PER_ROUND} reconnect-rounds=${RECONNECT_ROUNDS} concurrency=${CONCURRENCY} ` +
        `warm-up=${WARMUP_DEVICES} node=${process.version} cpus=${os.cpus().length} open-files=${fdLimit}`,
    );

    // 1. The base revision as a worktree, sharing this tree's node_modules (same lockfile assumed).
    execFileSync('git', ['-C', root, 'worktree', 'add', '--detach', worktree, baseSha], { stdio: 'ignore' });
    worktreeMade = true;
    symlinkSync(path.join(root, 'node_modules'), path.join(worktree, 'node_modules'));

    // 2. A fresh database per revision, seeded by that revision's own code.
    const total = WARMUP_DEVICES + ROUNDS * PER_ROUND;
    const dirs = { A: worktree, B: root };
    for (const label of ['A', 'B'] as const) {
      await admin.unsafe(`create database "${dbNames[label]}"`);
      createdDbs.push(dbNames[label]);
    }
    const seedStarted = performance.now();
    const seeds = await Promise.all(
      (['A', 'B'] as const).map((label) =>
        runSeed(label, dirs[label], dbUrl(dbNames[label]), path.join(tmp, `data-${label}`), total, tmp),
      ),
    );
    console.log(`seeded ${total} devices per database in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s`);

    // 3. Both servers at once, each from its own checkout with npm start's Node flags.
    for (const label of ['A', 'B'] as const) {
      const [httpPort, mqttPort] = [await freePort(), await freePort()];
      const child = spawnEntry(
        `server ${label}`,
        'src/main.ts',
        {
          DATA_DIR: path.join(tmp, `data-${label}`),
          DATABASE_URL: dbUrl(dbNames[label]),
          HOST: '127.0.0.1',
          HTTP_PORT: String(httpPort),
          MQTT_PORT: String(mqttPort),
          TCP_PORT: '0',
          JWT_SECRET: randomBytes(36).toString('base64url'),
          LOG_LEVEL: 'warn',
          ...BENCH_ADMISSION,
        },
        path.join(tmp, `server-${label}.log`),
        [],
        dirs[label],
      );
      servers.push({ label, dir: dirs[label], child, port: mqttPort, seed: seeds[label === 'A' ? 0 : 1]! });
      await waitForPort(httpPort, child, 120_000);
      await waitForPort(mqttPort, child, 60_000);
    }
    const [A, B] = servers as [Server, Server];
    await sleep(3000);

    // 4. Warm-up, then interleaved rounds: A B, B A, A B … (each pair swaps who goes first, so a drift
    // of the machine's load over the run falls on both alike).
    console.log(`\n${ROUND_HEADER}`);
    const record = (r: Round) => {
      rounds.push(r);
      console.log(roundRow(r));
    };
    for (const srv of [A, B]) record(await runRound(srv, 'warm-up', 0, WARMUP_DEVICES, CONCURRENCY));
    const order = (i: number) => (i % 2 ? [B, A] : [A, B]);
    for (let i = 0; i < ROUNDS; i++)
      for (const srv of order(i)) {
        await sleep(PAUSE_MS);
        record(await runRound(srv, 'first', WARMUP_DEVICES + i * PER_ROUND, PER_ROUND, CONCURRENCY));
      }
    // Reconnects: the devices of the first-connect rounds again, in the same order (cycling).
    for (let i = 0; i < RECONNECT_ROUNDS; i++)
      for (const srv of order(i)) {
        await sleep(PAUSE_MS);
        record(await runRound(srv, 'reconnect', WARMUP_DEVICES + (i % ROUNDS) * PER_ROUND, PER_ROUND, CONCURRENCY));
      }

    // 5. Summary.
    // "+ held": a revision that defers part of a connect's work (e.g. to a timer) shows it while the
    // connections are held, not while they connect; this figure is the connect's whole cost.
    type Figure = 'rate' | 'connectMs' | 'connectHeldMs' | 'disconnectMs';
    const value = (r: Round, key: Figure) => (key === 'connectHeldMs' ? r.connectMs + r.holdMs : r[key]);
    const of = (label: 'A' | 'B', kind: Round['kind'], key: Figure) =>
      rounds.filter((r) => r.label === label && r.kind === kind).map((r) => value(r, key));
    const lines: [string, Round['kind'], Figure, boolean][] = [
      ['CPU ms per first connect', 'first', 'connectMs', true],
      ['  + held', 'first', 'connectHeldMs', true],
      ['CPU ms per reconnect', 'reconnect', 'connectMs', true],
      ['  + held', 'reconnect', 'connectHeldMs', true],
      ['CPU ms per disconnect (1st)', 'first', 'disconnectMs', true],
      ['CPU ms per disconnect (re)', 'reconnect', 'disconnectMs', true],
      ['first connects/s', 'first', 'rate', false],
      ['reconnects/s', 'reconnect', 'rate', false],
    ];
    const fmt = (s: { mean: number; sd: number }, digits: number) =>
      `${s.mean.toFixed(digits)} ± ${Number.isFinite(s.sd) ? s.sd.toFixed(digits) : '?'}`;
    console.log(
      `\nsummary (mean ± standard deviation over the rounds; z = (B − A) / standard error of the difference, t = the bound |z| must pass)\n` +
        `${'figure'.padEnd(30)}${'A'.padStart(18)}${'B'.padStart(18)}${'B/A'.padStart(8)}${'z'.padStart(8)}${'t'.padStart(7)}  verdict`,
    );
    let cpuWorse = false;
    let cpuCompared = 0;
    for (const [title, kind, key, isCpu] of lines) {
      const a = of('A', kind, key);
      const b = of('B', kind, key);
      if (!a.length || !b.length) continue;
      const c = compare(a, b, isCpu);
      const digits = isCpu ? 3 : 0;
      console.log(
        `${title.padEnd(30)}${fmt(c.sa, digits).padStart(18)}${fmt(c.sb, digits).padStart(18)}` +
          `${c.ratio.toFixed(3).padStart(8)}${(Number.isFinite(c.z) ? c.z.toFixed(1) : '?').padStart(8)}` +
          `${(Number.isFinite(c.t) ? c.t.toFixed(1) : '?').padStart(7)}  ${c.verdict}`,
      );
      if (isCpu) {
        cpuCompared++;
        if (c.verdict === 'B worse') cpuWorse = true;
      }
    }
    console.log(
      `\nverdict: ${cpuWorse ? 'B costs more' : 'no regression beyond noise'} ` +
        `(rule: B costs more when, for any of the ${cpuCompared} CPU figures, B's mean exceeds A's by more than t standard ` +
        `errors of the difference (Welch's t-test at 95%); the rates are shown with the same test but are not part of the verdict, the client shares the machine)`,
    );

    for (const srv of servers) {
      const logged = loggedProblems(srv.child.logFile);
      if (logged.warn) console.log(`server ${srv.label} logged ${logged.warn} warnings`);
      if (logged.error)
        problems.push(`server ${srv.label} logged ${logged.error} errors, e.g.:\n  ${logged.samples.join('\n  ')}`);
    }
  } catch (err) {
    problems.push(`run aborted: ${(err as Error).stack ?? String(err)}`);
  } finally {
    for (const srv of servers) {
      if (!srv.child.alive()) {
        if (!problems.some((p) => p.includes(srv.child.name)))
          problems.push(`${srv.child.name} exited (${srv.child.describeExit()}):\n${tail(srv.child.logFile, 20)}`);
        continue;
      }
      const stopped = await srv.child.stop(10_000);
      if (stopped.killed) problems.push(`${srv.child.name} did not stop within 10 s of SIGTERM`);
    }
    for (const name of [...createdDbs]) {
      try {
        await admin.unsafe(`drop database if exists "${name}" with (force)`);
        createdDbs.splice(createdDbs.indexOf(name), 1);
      } catch (err) {
        problems.push(`drop database ${name}: ${(err as Error).message}`);
      }
    }
    await admin.end();
    if (worktreeMade) removeWorktree();
  }
  frame.finish(problems);
}

/** Seeds `n` devices into `url` with the code of checkout `dir` (this file as a child, see seedChild). */
async function runSeed(label: string, dir: string, url: string, dataDir: string, n: number, tmp: string) {
  const out = path.join(tmp, `seed-${label}.json`);
  const logFile = path.join(tmp, `seed-${label}.log`);
  const fd = openSync(logFile, 'w');
  let code: number | null;
  try {
    const child = spawn(process.execPath, ['--import', 'tsx', thisFile, SEED_CHILD, String(n), out], {
      cwd: dir,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: url, DATA_DIR: dataDir },
      stdio: ['ignore', fd, fd],
    });
    code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (c) => resolve(c));
    });
  } finally {
    closeSync(fd);
  }
  if (code !== 0) throw new Error(`seeding ${label} (${dir}) failed with code ${code}:\n${tail(logFile, 20)}`);
  return JSON.parse(readFileSync(out, 'utf8')) as Seeded;
}

if (process.argv[2] === SEED_CHILD) {
  await seedChild(Number(process.argv[3]), process.argv[4]!);
  process.exit(0);
} else {
  await main();
}
