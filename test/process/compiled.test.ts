import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { startFlags } from '../../bench/lib/start-flags.ts';
import { serverEnv, type Spawned } from '../helpers/process.ts';
import { until } from '../helpers/wait.ts';

/**
 * The compiled server (`npm run build`, as the Docker image runs it: Dockerfile): it starts from dist/ on the
 * embedded database with its migrations, console and CLI found from there, answers /readyz, creates a project
 * through the compiled CLI and stops on SIGTERM. The output goes to a directory of its own beside dist/, so the
 * lookups relative to the repository (drizzle/, console/) are the ones dist/ makes.
 */
const ROOT = path.resolve(import.meta.dirname, '../..');
const OUT = path.join(ROOT, `.tmp-compiled-${process.pid}`);
const exec = promisify(execFile);
const dirs: string[] = [OUT];
const procs: Spawned['child'][] = [];
afterAll(() => {
  for (const p of procs) p.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('the compiled server (npm run build)', () => {
  it('starts from dist on the embedded database, answers /readyz, creates a project by the CLI, stops on SIGTERM', async () => {
    await exec('npm', ['run', '-s', 'build', '--', '--outDir', OUT], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
    const main = path.join(OUT, 'src', 'main.js');
    expect(existsSync(main)).toBe(true);

    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'iot-compiled-'));
    dirs.push(dataDir);
    const env = { PATH: process.env.PATH, HOME: process.env.HOME, ...serverEnv(dataDir, undefined) };
    const child = spawn(process.execPath, [...startFlags(), main], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    procs.push(child);
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));

    // Ready once every listener is bound: the control socket is the last to open. Asked every 500 ms for 120 s,
    // or until the server has exited.
    let ready = 0;
    await until(
      async () => {
        const url = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
        if (url) ready = (await fetch(`${url}/readyz`).catch(() => undefined))?.status ?? 0;
        return ready === 200 || child.exitCode !== null;
      },
      'the compiled server to be ready',
      { timeout: 120_000, interval: 500 },
    ).catch(() => undefined);
    expect(ready, out).toBe(200);
    // The web console, whose sources and build the compiled server finds from dist/ (console/build.ts).
    const url = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(out)![1]!;
    expect((await fetch(`${url}/console/`)).status, out).toBe(200);

    const created = await exec(
      process.execPath,
      [path.join(OUT, 'src', 'cli', 'cli.js'), 'project', 'create', '--name', 'compiled'],
      {
        cwd: ROOT,
        env: { PATH: process.env.PATH, HOME: process.env.HOME, DATA_DIR: dataDir },
      },
    );
    expect(JSON.parse(created.stdout)).toMatchObject({ name: 'compiled', id: expect.any(String) });

    child.kill('SIGTERM');
    expect(await exited, out).toBe(0);
    expect(out).toMatch(/"msg":"stopped"/);
  }, 300_000); // the build alone takes a minute on a loaded 2-core machine, a first start migrates
});
