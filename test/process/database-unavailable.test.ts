import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { serverEnv, spawnTs, type Spawned } from '../helpers/process.ts';

/**
 * A DATABASE_URL that cannot be used stops the start (and the CLI) with one line naming
 * DATABASE_URL, like the configuration errors, not a stack trace (README "Configuration").
 */
const dirs: string[] = [];
const procs: Spawned[] = [];
afterAll(() => {
  for (const p of procs) p.child.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function run(entry: string, args: string[], databaseUrl: string): Spawned {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'iot-dburl-'));
  dirs.push(dir);
  const p = spawnTs(entry, args, serverEnv(dir, databaseUrl));
  procs.push(p);
  return p;
}

/** A port on 127.0.0.1 that nothing listens on (bound once by the system, then released). */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** The PostgreSQL server of TEST_DATABASE_URL, else the local one on 5432 when it answers. */
async function postgresServer(): Promise<URL | undefined> {
  const url = new URL(process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
  const answers = await new Promise<boolean>((resolve) => {
    const socket = net.connect(Number(url.port || 5432), url.hostname);
    socket.setTimeout(2000, () => (socket.destroy(), resolve(false)));
    socket.once('connect', () => (socket.end(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
  return answers ? url : undefined;
}

/** What the process printed, without the stack trace or log noise it must not have. */
function expectOneLine(p: Spawned, re: RegExp) {
  const out = p.output();
  expect(out).toMatch(re);
  expect(out).not.toMatch(/\n\s+at /);
  expect(out).not.toMatch(/Failed to start|unexpected failure/);
}

const server = await postgresServer();

describe('a DATABASE_URL that cannot be used', () => {
  it('npm start names DATABASE_URL when nothing listens on its port', async () => {
    const port = await closedPort();
    const p = run('src/main.ts', [], `postgres://iot:s3cret-pass@127.0.0.1:${port}/iot`);
    expect(await p.exit()).toBe(1);
    expectOneLine(
      p,
      new RegExp(`DATABASE_URL: cannot reach PostgreSQL at 127\\.0\\.0\\.1:${port} \\(.*ECONNREFUSED.*\\)`),
    );
    // The password of the URL is never printed.
    expect(p.output()).not.toContain('s3cret-pass');
  }, 60_000);

  it('the CLI says the same in one line', async () => {
    const port = await closedPort();
    const p = run('src/cli/cli.ts', ['project', 'list'], `postgres://iot@127.0.0.1:${port}/iot`);
    expect(await p.exit()).toBe(1);
    expectOneLine(p, /^error: DATABASE_URL: cannot reach PostgreSQL at 127\.0\.0\.1:\d+ /m);
  }, 60_000);

  it.skipIf(!server)(
    'npm start names DATABASE_URL and says how to create a missing database (needs PostgreSQL)',
    async () => {
      const url = new URL(server!);
      const name = `iot_missing_${process.pid}_${Date.now()}`;
      url.pathname = `/${name}`;
      const p = run('src/main.ts', [], url.href);
      expect(await p.exit()).toBe(1);
      expectOneLine(
        p,
        new RegExp(
          `DATABASE_URL: database "${name}" does not exist on ${url.hostname}:${url.port || 5432}: create it \\(createdb .*${name}\\)`,
        ),
      );
    },
    60_000,
  );
});
