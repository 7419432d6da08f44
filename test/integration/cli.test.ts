import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgres } from '../../src/db/client.ts';
import { openDatabase, type OpenedDatabase } from '../../src/db/open.ts';
import { controlSocketPath, startControlServer, type ControlServer } from '../../src/control/control-socket.ts';
import { createServices, type Services } from '../../src/composition/services.ts';
import { runCli as cli, type CliRun as Run } from '../helpers/cli.ts';

const silent = { info: () => {}, warn: () => {} };
/** Every CLI run is a fresh Node process that loads TypeScript and opens a database. */
const SLOW = { timeout: 120_000 };

function ok(run: Run): string {
  if (run.code !== 0) throw new Error(`CLI exited ${run.code}: ${run.stderr}`);
  return run.stdout;
}

const CREATED_KEYS = ['admin', 'app', 'id', 'name', 'project_key'];

function expectCreated(stdout: string, name: string) {
  const created = JSON.parse(stdout);
  expect(Object.keys(created).sort()).toEqual(CREATED_KEYS);
  expect(created).toEqual({
    id: expect.any(String),
    name,
    project_key: expect.any(String),
    app: { app_id: expect.any(String), access_key: expect.any(String), secret_key: expect.any(String) },
    admin: { account: 'admin', password: expect.any(String) },
  });
  return created as {
    id: string;
    app: { app_id: string; access_key: string; secret_key: string };
    admin: { account: string; password: string };
  };
}

const ids = (json: string) => (JSON.parse(json) as { id: string }[]).map((p) => p.id);

/** A stack trace has lines starting with "at "; expected failures must print none. */
const NO_STACK = /^\s+at /m;

const dirs: string[] = [];
async function tempDataDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'iot-cli-'));
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('cli without a running server (embedded DATA_DIR opened by the CLI)', SLOW, () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await tempDataDir();
  });

  it('creates, lists and deletes a project; the printed credentials work', async () => {
    // A new directory: --init allows the CLI to create the database (test/integration/cli-data-dir.test.ts).
    const run = await cli(
      ['project', 'create', '--init', '--name', 'cli project', '--descr', 'made by the cli', '--tag', 'env=test'],
      { DATA_DIR: dataDir },
    );
    const created = expectCreated(ok(run), 'cli project');
    expect(run.stderr).toMatch(/not shown again/);

    expect(ids(ok(await cli(['project', 'list', '--json'], { DATA_DIR: dataDir })))).toContain(created.id);
    const [listed] = JSON.parse(ok(await cli(['project', 'list', '--json', '--data-dir', dataDir]))) as object[];
    expect(listed).toEqual({
      id: created.id,
      name: 'cli project',
      descr: 'made by the cli',
      project_key: expect.any(String),
      create_time: expect.any(Number),
      device_count: 0,
    });
    const table = ok(await cli(['project', 'list'], { DATA_DIR: dataDir }));
    expect(table.split('\n')[0]).toMatch(/^ID\s+NAME\s+DEVICES\s+CREATED \(UTC\)\s+DESCRIPTION$/);
    expect(table).toMatch(
      new RegExp(
        `^${created.id}\\s+cli project\\s+0\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\s+made by the cli$`,
        'm',
      ),
    );

    // The CLI has exited and released the lock: the credentials it printed log in.
    const database = await openDatabase({ DATA_DIR: dataDir, DATABASE_URL: undefined }, silent);
    try {
      const services = createServices({ db: database.db });
      await expect(services.auth.appLogin(created.app)).resolves.toMatchObject({ projectId: created.id, kind: 'app' });
      await expect(services.auth.adminLogin({ app_id: created.app.app_id, ...created.admin })).resolves.toMatchObject({
        projectId: created.id,
      });
    } finally {
      await database.close();
    }

    const refused = await cli(['project', 'delete', created.id], { DATA_DIR: dataDir });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--yes/);
    expect(ids(ok(await cli(['project', 'list', '--json'], { DATA_DIR: dataDir })))).toContain(created.id);

    expect(ok(await cli(['project', 'delete', created.id, '--yes'], { DATA_DIR: dataDir }))).toBe(
      `Deleted project ${created.id}.\n`,
    );
    expect(ids(ok(await cli(['project', 'list', '--json'], { DATA_DIR: dataDir })))).not.toContain(created.id);
    expect(ok(await cli(['project', 'list'], { DATA_DIR: dataDir }))).toBe('No projects.\n');
  });

  it('exits 1 with the service message when deleting a project that does not exist', async () => {
    const run = await cli(['project', 'delete', '000000000000000000000000', '--yes'], { DATA_DIR: dataDir });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^error: Project not found\n$/m);
  });

  it('migrates the embedded database', async () => {
    expect(ok(await cli(['migrate'], { DATA_DIR: dataDir }))).toMatch(/^Migrations applied \(embedded database in /);
  });
});

describe('cli while a server holds DATA_DIR (through the control socket)', SLOW, () => {
  let dataDir: string;
  let database: OpenedDatabase;
  let services: Services;
  let control: ControlServer | undefined;

  beforeAll(async () => {
    dataDir = await tempDataDir();
    database = await openDatabase({ DATA_DIR: dataDir, DATABASE_URL: undefined }, silent);
    services = createServices({ db: database.db });
    control = await startControlServer({ socketPath: controlSocketPath(dataDir), services, logger: false });
  });
  afterAll(async () => {
    await control?.close();
    await database?.close();
  });

  it('listens on a socket only its owner may use', async () => {
    expect((await stat(controlSocketPath(dataDir))).mode & 0o777).toBe(0o600);
  });

  it('creates a project the server sees at once, lists it and deletes it', async () => {
    const created = expectCreated(
      ok(await cli(['project', 'create', '--name', 'via socket'], { DATA_DIR: dataDir })),
      'via socket',
    );
    expect((await services.projects.list()).map((p) => p.id)).toContain(created.id);
    await expect(services.auth.appLogin(created.app)).resolves.toMatchObject({ projectId: created.id });

    expect(ids(ok(await cli(['project', 'list', '--json'], { DATA_DIR: dataDir })))).toContain(created.id);
    ok(await cli(['project', 'delete', created.id, '--yes'], { DATA_DIR: dataDir }));
    expect((await services.projects.list()).map((p) => p.id)).not.toContain(created.id);
    await expect(services.auth.appLogin(created.app)).rejects.toThrow(/Invalid app_id/);
  });

  it("reports the server's validation and not-found failures", async () => {
    const missing = await cli(['project', 'delete', '000000000000000000000000', '--yes'], { DATA_DIR: dataDir });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error: Project not found\n$/m);
  });

  it('refuses to migrate a DATA_DIR held by the server', async () => {
    const run = await cli(['migrate'], { DATA_DIR: dataDir });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/a server is running on .*Stop it to migrate/);
    expect(run.stderr).not.toMatch(NO_STACK);
  });

  it('says who holds DATA_DIR when the control socket is gone', async () => {
    await control?.close();
    control = undefined;
    const run = await cli(['project', 'list'], { DATA_DIR: dataDir });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(new RegExp(`in use by process ${process.pid}, and no control socket answers`));
    expect(run.stderr).not.toMatch(NO_STACK);
    control = await startControlServer({ socketPath: controlSocketPath(dataDir), services, logger: false });
    ok(await cli(['project', 'list'], { DATA_DIR: dataDir }));
  });
});

describe('control socket start-up', SLOW, () => {
  const services = {} as Services;

  it('replaces a socket file left by a process that died', async () => {
    const dir = await tempDataDir();
    const socketPath = controlSocketPath(dir);
    // A process that listens and is killed leaves its socket file behind.
    await new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, [
        '-e',
        `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => process.kill(process.pid, 'SIGKILL'))`,
      ]);
      child.on('error', reject);
      child.on('exit', () => resolve());
    });
    expect((await stat(socketPath)).isSocket()).toBe(true);
    const server = await startControlServer({ socketPath, services, logger: false });
    await server.close();
  });

  it('refuses a path where another server listens, or that is not a socket', async () => {
    const dir = await tempDataDir();
    const socketPath = controlSocketPath(dir);
    const first = await startControlServer({ socketPath, services, logger: false });
    try {
      await expect(startControlServer({ socketPath, services, logger: false })).rejects.toThrow(/already listening/);
    } finally {
      await first.close();
    }
    await writeFile(socketPath, 'not a socket');
    await expect(startControlServer({ socketPath, services, logger: false })).rejects.toThrow(/is not a socket/);
  });

  it('refuses a path longer than a unix socket allows instead of listening on a truncated one', async () => {
    const dir = path.join(await tempDataDir(), 'd'.repeat(120));
    await expect(startControlServer({ socketPath: controlSocketPath(dir), services, logger: false })).rejects.toThrow(
      /use a shorter DATA_DIR/,
    );
  });
});

describe.concurrent('cli command line', SLOW, () => {
  it('prints the commands with --help and exits 0', async () => {
    const run = await cli(['--help']);
    expect(run.code).toBe(0);
    for (const command of ['project create', 'project list', 'project delete', 'migrate'])
      expect(run.stdout).toContain(command);
  });

  it("prints a command's options with --help", async () => {
    const run = await cli(['project', 'create', '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/--name <name>/);
    expect(run.stdout).toMatch(/--data-dir <dir>/);
  });

  it.each([
    [['project', 'create'], /--name is required/],
    [['project', 'create', '--name', 'x', '--bogus'], /Unknown option '--bogus'/],
    [['project', 'create', '--name='], /--name: must not be empty/],
    [['project', 'create', '--name', 'x', '--device-quota', 'many'], /--device-quota: /],
    [['project', 'create', '--name', 'x', '--tag', 'novalue'], /--tag 'novalue': must be key=value/],
    [['project', 'delete'], /project <id> is required/],
    [['project', 'list', 'extra'], /unexpected argument 'extra'/],
    [['project'], /'project' needs a command/],
    [['project', 'rename'], /unknown command 'project rename'/],
    [['frobnicate'], /unknown command 'frobnicate'/],
  ])('exits 2 with a message for %j', async (args, message) => {
    const run = await cli(args);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(message);
    expect(run.stderr).toMatch(/--help' for usage/);
    expect(run.stderr).not.toMatch(NO_STACK);
  });

  it('exits 1 naming the variable when the environment is invalid', async () => {
    const run = await cli(['project', 'list'], { DATABASE_URL: 'mysql://localhost/db' });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/DATABASE_URL: must be a postgres:\/\//);
    expect(run.stderr).not.toMatch(NO_STACK);
  });

  it('exits 1 without a stack trace when PostgreSQL is unreachable', async () => {
    const run = await cli(['project', 'list', '--database-url', 'postgres://nobody@127.0.0.1:1/none']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^error: .*ECONNREFUSED/);
    expect(run.stderr).not.toMatch(NO_STACK);
  });
});

const pgUrl = process.env.TEST_DATABASE_URL;
describe.skipIf(!pgUrl)('cli with DATABASE_URL (TEST_DATABASE_URL)', SLOW, () => {
  it('migrates, then creates, lists and deletes a project in PostgreSQL', async () => {
    const env = { DATABASE_URL: pgUrl, DATA_DIR: await tempDataDir() };
    expect(ok(await cli(['migrate'], env))).toMatch(
      /^Migrations applied \(PostgreSQL, TimescaleDB (enabled|not available)\)/,
    );
    const created = expectCreated(ok(await cli(['project', 'create', '--name', 'pg project'], env)), 'pg project');

    const pg = await openPostgres(pgUrl as string, { max: 1 });
    try {
      const services = createServices({ db: pg.db });
      await expect(services.auth.appLogin(created.app)).resolves.toMatchObject({ projectId: created.id });
    } finally {
      await pg.close();
    }
    expect(ids(ok(await cli(['project', 'list', '--json'], env)))).toContain(created.id);
    ok(await cli(['project', 'delete', created.id, '--yes'], env));
    expect(ids(ok(await cli(['project', 'list', '--json'], env)))).not.toContain(created.id);
    // The embedded database was never touched.
    await expect(stat(path.join(env.DATA_DIR, 'pg'))).rejects.toThrow(/ENOENT/);
  });
});
