import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');

export interface Spawned {
  child: ChildProcess;
  output(): string;
  /** Resolves with the first output line matching `re` (rejects on exit or timeout). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  exit(): Promise<number | null>;
}

/** Runs a TypeScript entry of the project (e.g. src/main.ts) as a child process. */
export function spawnTs(entry: string, args: string[], env: Record<string, string | undefined>): Spawned {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, entry), ...args], {
    cwd: root,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env } as NodeJS.ProcessEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const waiters: Array<{ re: RegExp; resolve: (m: RegExpExecArray) => void }> = [];
  const onData = (buf: Buffer) => {
    out += buf.toString();
    for (const w of [...waiters]) {
      const m = w.re.exec(out);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return {
    child,
    output: () => out,
    waitFor(re, timeoutMs = 30_000) {
      const m = re.exec(out);
      if (m) return Promise.resolve(m);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re}; output:\n${out}`)), timeoutMs);
        waiters.push({ re, resolve: (mm) => (clearTimeout(timer), resolve(mm)) });
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`process exited (${code}) before ${re}; output:\n${out}`));
        });
      });
    },
    exit: () => exited,
  };
}

/**
 * The environment of a test server (`src/main.ts`): its DATA_DIR, the PostgreSQL database when one
 * is given (else the embedded one in DATA_DIR), every port 0 on 127.0.0.1, info logs; `extra` adds to it.
 */
export function serverEnv(
  dataDir: string,
  databaseUrl: string | undefined,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    DATA_DIR: dataDir,
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    HOST: '127.0.0.1',
    HTTP_PORT: '0',
    MQTT_PORT: '0',
    TCP_PORT: '0',
    LOG_LEVEL: 'info',
    NODE_ENV: 'development',
    ...extra,
  };
}

/** A port on 127.0.0.1 that nothing listens on (bound once by the system, then released): connecting is refused. */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}
