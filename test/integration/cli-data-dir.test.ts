import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlSocketPath, startControlServer, type ControlServer } from '../../src/control/control-socket.ts';
import { openDatabase, type OpenedDatabase } from '../../src/db/open.ts';
import { createServices } from '../../src/composition/services.ts';
import { runCli, type CliRun } from '../helpers/cli.ts';

/**
 * The CLI and the server's DATA_DIR (README "Projects (tenants)"): a CLI started without the
 * server's DATA_DIR must not quietly make a database of its own and change that one instead.
 */
const SLOW = { timeout: 120_000 };
const silent = { info: () => {}, warn: () => {} };

/** The CLI with DATA_DIR, DATABASE_URL and HOST unset unless `env` gives them. */
function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliRun> {
  return runCli(args, { HOST: undefined, ...env });
}

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'iot-cli-dir-'));
  dirs.push(dir);
  return dir;
}

/** Stands in for a server on its HTTP port: `/livez` answers like src/app.ts's. */
let fakeServer: http.Server;
let serverPort: string;
/** A port where nothing listens (taken, then released). */
let freePort: string;

beforeAll(async () => {
  fakeServer = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(req.url === '/livez' ? JSON.stringify({ result: true, info: { status: 'ok' } }) : '{}');
  });
  await new Promise<void>((resolve) => fakeServer.listen(0, '127.0.0.1', resolve));
  serverPort = String((fakeServer.address() as AddressInfo).port);
  const probe = http.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  freePort = String((probe.address() as AddressInfo).port);
  await new Promise<void>((resolve) => probe.close(() => resolve()));
});

afterAll(async () => {
  await new Promise<void>((resolve) => fakeServer.close(() => resolve()));
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('the CLI without a database in DATA_DIR', SLOW, () => {
  it('refuses to create one without --init, names the directory and leaves it untouched', async () => {
    const dataDir = path.join(await tempDir(), 'data');
    for (const args of [['project', 'list'], ['project', 'create', '--name', 'lost'], ['migrate']]) {
      const run = await cli(args, { DATA_DIR: dataDir, HTTP_PORT: freePort });
      expect(run.code, args.join(' ')).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(new RegExp(`^error: no database in ${dataDir}\\. Start the server first`));
      expect(run.stderr).toMatch(/add --init\./);
    }
    expect(existsSync(dataDir)).toBe(false);
  });

  it('says that a server answers on the HTTP port but keeps its data elsewhere', async () => {
    const dataDir = path.join(await tempDir(), 'data');
    const run = await cli(['project', 'create', '--name', 'lost'], { DATA_DIR: dataDir, HTTP_PORT: serverPort });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(new RegExp(`A server answers on port ${serverPort}, but its data is not here`));
    expect(existsSync(dataDir)).toBe(false);
  });

  it('creates one with --init, then uses it without, saying where it is', async () => {
    const dataDir = path.join(await tempDir(), 'data');
    const created = await cli(['project', 'create', '--name', 'first', '--init'], {
      DATA_DIR: dataDir,
      HTTP_PORT: freePort,
    });
    expect(created.code).toBe(0);
    expect(created.stderr).toContain(`Database: embedded in ${dataDir} (no server holds it; opened by this command).`);
    const { id } = JSON.parse(created.stdout) as { id: string };
    // The layout the README shows (test/unit/readme-cli.test.ts).
    expect(created.stdout).toBe(`${JSON.stringify(JSON.parse(created.stdout), null, 2)}\n`);

    const listed = await cli(['project', 'list', '--json'], { DATA_DIR: dataDir, HTTP_PORT: freePort });
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.stdout) as { id: string }[]).map((p) => p.id)).toEqual([id]);
    expect(listed.stderr).toBe(`Database: embedded in ${dataDir} (no server holds it; opened by this command).\n`);

    // A server on the HTTP port that does not hold this directory: the command runs, with a warning.
    const warned = await cli(['project', 'list', '--json'], { DATA_DIR: dataDir, HTTP_PORT: serverPort });
    expect(warned.code).toBe(0);
    expect(warned.stderr).toMatch(
      new RegExp(`^warning: a server answers on port ${serverPort} but does not hold ${dataDir}`, 'm'),
    );

    const migrated = await cli(['migrate'], { DATA_DIR: dataDir, HTTP_PORT: freePort });
    expect(migrated.code).toBe(0);
    expect(migrated.stdout).toBe(`Migrations applied (embedded database in ${dataDir}).\n`);
  });

  it('migrate --init creates the database', async () => {
    const dataDir = path.join(await tempDir(), 'data');
    const run = await cli(['migrate', '--init'], { DATA_DIR: dataDir, HTTP_PORT: freePort });
    expect(run.code).toBe(0);
    expect(existsSync(path.join(dataDir, 'pg', 'PG_VERSION'))).toBe(true);
  });
});

describe('the CLI while a server holds DATA_DIR', SLOW, () => {
  let dataDir: string;
  let database: OpenedDatabase;
  let control: ControlServer;

  beforeAll(async () => {
    dataDir = path.join(await tempDir(), 'data');
    database = await openDatabase({ DATA_DIR: dataDir, DATABASE_URL: undefined }, silent);
    control = await startControlServer({
      socketPath: controlSocketPath(dataDir),
      services: createServices({ db: database.db }),
      logger: false,
    });
  });
  afterAll(async () => {
    await control?.close();
    await database?.close();
  });

  it('goes through the control socket and says so', async () => {
    const run = await cli(['project', 'list'], { DATA_DIR: dataDir, HTTP_PORT: serverPort });
    expect(run.code).toBe(0);
    expect(run.stderr).toBe(
      `Database: the running server's, embedded in ${dataDir} (through ${controlSocketPath(dataDir)}).\n`,
    );
  });

  it('refuses to migrate, naming the directory', async () => {
    const run = await cli(['migrate'], { DATA_DIR: dataDir });
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      `error: a server is running on ${dataDir}: it applied the migrations when it started. Stop it to migrate from the command line.\n`,
    );
  });
});
