import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { tcpSocketsOf } from '../../test/helpers/proc-sockets.ts';
import { startFlags } from './start-flags.ts';

const root = path.resolve(import.meta.dirname, '../..');
const gcHook = pathToFileURL(path.join(import.meta.dirname, 'mqtt-gc-hook.ts')).href;

/** Every child this process started: killed (SIGKILL) when this process exits, whatever the reason. */
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

export interface Child {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** performance.now() when it was spawned. */
  readonly startedAt: number;
  /** Whether the process is still running. */
  alive(): boolean;
  /** How it ended, once it has: `code 0`, `signal SIGKILL`… */
  describeExit(): string;
  /**
   * Memory after a full garbage collection and once the RSS has settled (see mqtt-gc-hook.ts): RSS and its
   * peak from /proc, the V8 heap and the memory outside it from the process itself.
   */
  memory(): Promise<Memory>;
  /** SIGTERM, then SIGKILL after `graceMs`; answers how long the stop took and whether it had to kill. */
  stop(graceMs: number): Promise<{ ms: number; code: number | null; signal: string | null; killed: boolean }>;
}

export interface Memory {
  rss: number;
  peak: number;
  heapUsed: number;
  /** Memory of C++ objects and buffers bound to JS objects (socket buffers, Buffers). */
  external: number;
  /** The V8 heap's committed bytes (heapTotal). */
  heapTotal: number;
  /** The young generation's resident bytes (V8's physical size of its spaces), and its committed bytes (mqtt-gc-hook.ts). */
  youngGeneration: number;
  youngCommitted: number;
}

/** Node flags (`spawnEntry`'s `nodeArgs`) for a V8 CPU profile written into `dir` when the process stops. */
export const cpuProfFlags = (dir: string | undefined): string[] => (dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : []);

/**
 * Runs a TypeScript entry of the project as `node <npm start's flags> --import tsx <entry>` (as
 * test/helpers/process.ts does), its stdout and stderr written to `logFile` rather than piped: a pipe
 * this busy process reads late would block the child's synchronous log writes and slow the server
 * under test.
 */
export function spawnEntry(
  name: string,
  entry: string,
  env: Record<string, string | undefined>,
  logFile: string,
  nodeArgs: string[] = [],
  /** The checkout whose entry runs, and its cwd (bench/connect-ab.ts runs another revision's). */
  dir = root,
): Child {
  const startedAt = performance.now();
  const fd = openSync(logFile, 'w');
  let child: ChildProcess;
  try {
    child = spawn(
      process.execPath,
      ['--expose-gc', ...startFlags(dir), ...nodeArgs, '--import', 'tsx', '--import', gcHook, path.join(dir, entry)],
      {
        cwd: dir,
        env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env } as NodeJS.ProcessEnv,
        stdio: ['ignore', fd, fd],
      },
    );
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) throw new Error(`${name}: could not start ${entry}`);
  children.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => children.delete(child));
  const pid = child.pid;
  let samples = 0;
  return {
    name,
    pid,
    logFile,
    startedAt,
    alive: () => child.exitCode === null && child.signalCode === null,
    describeExit: () => (child.signalCode ? `signal ${child.signalCode}` : `code ${String(child.exitCode)}`),
    async memory() {
      const wanted = ++samples;
      child.kill('SIGUSR2');
      const deadline = performance.now() + 30_000;
      for (;;) {
        const all = readFileSync(logFile, 'utf8').split('\n');
        const failed = all.find((l) => l.startsWith('{"bench_memory_error":'));
        if (failed) throw new Error(`${name} could not sample its memory: ${failed}`);
        const lines = all.filter((l) => l.startsWith('{"bench_memory":'));
        if (lines.length >= wanted) {
          const m = (
            JSON.parse(lines[wanted - 1]!) as {
              bench_memory: {
                gc: boolean;
                heapUsed: number;
                external: number;
                heapTotal: number;
                youngGeneration: number;
                youngCommitted: number;
                settled: boolean;
                settleMs: number;
              };
            }
          ).bench_memory;
          if (!m.gc) throw new Error(`${name}: the process has no gc() (--expose-gc missing)`);
          if (!m.settled) console.warn(`note: ${name}'s RSS was still moving ${m.settleMs} ms after the full GC`);
          const { heapUsed, external, heapTotal, youngGeneration, youngCommitted } = m;
          return { ...memoryOf(pid), heapUsed, external, heapTotal, youngGeneration, youngCommitted };
        }
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`${name} exited while its memory was being read`);
        if (performance.now() > deadline) throw new Error(`${name} did not answer SIGUSR2 with its memory within 30 s`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop(graceMs) {
      const started = performance.now();
      let killed = false;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => {
          killed = true;
          child.kill('SIGKILL');
        }, graceMs);
        await exited;
        clearTimeout(timer);
      }
      return { ms: performance.now() - started, code: child.exitCode, signal: child.signalCode, killed };
    },
  };
}

/** A TCP port free on 127.0.0.1 right now (the child binds it a moment later; a clash is reported). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves once a TCP connection to the port is accepted; rejects when `child` dies or after `timeoutMs`. */
export async function waitForPort(port: number, child: Child, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (!child.alive())
      throw new Error(
        `${child.name} exited (${child.describeExit()}) before listening on ${port}:\n${tail(child.logFile, 20)}`,
      );
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (performance.now() > deadline)
      throw new Error(`${child.name} did not listen on ${port} within ${timeoutMs} ms:\n${tail(child.logFile, 20)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The last `lines` lines of a log file (empty when it cannot be read). */
export function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Resident set size of a process now and its peak, in bytes, from /proc/<pid>/status. */
export function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!m) throw new Error(`/proc/${pid}/status has no ${field}`);
    return Number(m[1]) * 1024;
  };
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
}

let clockTicks: number | undefined;
/** CPU time (user + system) a process has used so far, in ms, from /proc/<pid>/stat. */
export const cpuMsOf = (pid: number): number => statCpuMs(`/proc/${pid}/stat`);

/** The same for one thread of a process (its main thread's id is the process's own). */
export const threadCpuMs = (pid: number, tid: number): number => statCpuMs(`/proc/${pid}/task/${tid}/stat`);

function statCpuMs(file: string): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const stat = readFileSync(file, 'utf8');
  // The command name (field 2) may hold spaces: fields are counted after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks;
}

/** CPU time all processes of the machine have used so far, in ms, from /proc/stat (ms of one CPU). */
export function machineBusyMs(): number {
  cpuMsOf(process.pid); // sets clockTicks
  const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq, steal] = fields.map(Number);
  return (
    (((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) * 1000) / clockTicks!
  );
}

/** The soft limit of open files of this process (children inherit it). */
export function openFilesLimit(): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return !m || m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

/** How many local ports connect() can pick from (net.ipv4.ip_local_port_range). */
export function ephemeralPorts(): number {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return (hi ?? 0) - (lo ?? 0) + 1;
  } catch {
    return Infinity;
  }
}

/** CPU time (ms) used so far by each live process in `pids` (a process gone in between is left out). */
export function cpuByPid(pids: Iterable<number>): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pids) {
    try {
      out.set(pid, cpuMsOf(pid));
    } catch {
      // exited since it was listed
    }
  }
  return out;
}

/** CPU used between two `cpuByPid` snapshots; a process that appeared in between counts from zero. */
export function cpuBetween(before: Map<number, number>, after: Map<number, number>): number {
  let ms = 0;
  for (const [pid, cpu] of after) ms += cpu - (before.get(pid) ?? 0);
  return ms;
}

/** Local ports of the TCP connections process `pid` holds to `remotePort` (e.g. its PostgreSQL connections). */
export function localPortsTo(pid: number, remotePort: number): Set<number> {
  return new Set(
    tcpSocketsOf(pid)
      .filter((s) => s.remote === remotePort)
      .map((s) => s.local),
  );
}

/** Every simulated device connects from 127.0.0.1: that one address may hold them all (mqtt-broker/core/admission.ts). */
export const BENCH_ADMISSION = {
  PENDING_CONNECTIONS_PER_ADDRESS: '1000000',
  PENDING_CONNECTIONS_MAX: '1000000',
  DEVICE_LOGIN_RATE: '1000000',
  DEVICE_LOGIN_BURST: '1000000',
};
