import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnTs, type Spawned } from '../helpers/process.ts';

const dirs: string[] = [];
const procs: Spawned[] = [];
const tempDir = () => {
  const d = mkdtempSync(path.join(os.tmpdir(), 'iot-start-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const p of procs) p.child.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const baseEnv = (dataDir: string) => ({
  DATA_DIR: dataDir,
  HOST: '127.0.0.1',
  HTTP_PORT: '0',
  MQTT_PORT: '0',
  TCP_PORT: '0',
  LOG_LEVEL: 'info',
  NODE_ENV: 'development',
});

function start(env: Record<string, string | undefined>) {
  const p = spawnTs('src/main.ts', [], env);
  procs.push(p);
  return p;
}

describe('npm start on the embedded database', () => {
  it('migrates, listens, keeps a generated JWT secret in DATA_DIR, and stops cleanly on SIGTERM', async () => {
    const dataDir = tempDir();
    const server = start(baseEnv(dataDir));
    const [, url] = await server.waitFor(/Server listening at (http:\/\/127\.0\.0\.1:\d+)/, 60_000);
    const health = await fetch(`${url}/health`).then((r) => r.json());
    expect(health).toEqual({ result: true, info: { status: 'ok' } });
    const unknown = await fetch(`${url}/api/v1/nothing`);
    expect(unknown.status).toBe(404);
    expect(readFileSync(path.join(dataDir, 'jwt-secret'), 'utf8').trim().length).toBeGreaterThanOrEqual(32);
    expect(existsSync(path.join(dataDir, 'lock'))).toBe(true);

    // A second server on the same DATA_DIR is refused and names the holder.
    const second = start(baseEnv(dataDir));
    expect(await second.exit()).toBe(1);
    expect(second.output()).toMatch(new RegExp(`in use by process ${server.child.pid}`));

    server.child.kill('SIGTERM');
    expect(await server.exit()).toBe(0);
    expect(existsSync(path.join(dataDir, 'lock'))).toBe(false);
  }, 120_000); // a first start migrates a new embedded database: well over 30 s on a loaded 2-core machine

  it('refuses to start in production without JWT_SECRET, naming it', async () => {
    const p = start({ ...baseEnv(tempDir()), NODE_ENV: 'production' });
    expect(await p.exit()).toBe(1);
    expect(p.output()).toMatch(/JWT_SECRET: is required when NODE_ENV=production/);
  });

  it('names HTTP_PORT when the port is in use', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const p = start({ ...baseEnv(tempDir()), HTTP_PORT: String(port) });
      expect(await p.exit()).toBe(1);
      expect(p.output()).toMatch(new RegExp(`Port ${port} is already in use: set HTTP_PORT`));
    } finally {
      blocker.close();
    }
  });

  it('reports invalid configuration values by name', async () => {
    const p = start({ ...baseEnv(tempDir()), HTTP_PORT: 'eighty', DATABASE_URL: 'mysql://x' });
    expect(await p.exit()).toBe(1);
    expect(p.output()).toMatch(/HTTP_PORT/);
    expect(p.output()).toMatch(/DATABASE_URL: must be a postgres/);
  });
});
