import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnTs, type Spawned } from '../helpers/process.ts';

/**
 * Against the real server process: no credential it handed out reaches its log, even when database
 * errors carry them as query parameters; DATA_DIR is owner-only; /readyz tells the truth during a
 * database outage (PostgreSQL) and while draining after SIGTERM, /livez only that it answers.
 * Runs on PostgreSQL (a database of its own) when TEST_DATABASE_URL is set, else on the embedded one.
 */
const PLATFORM_TOKEN = 'secrets-platform-token-0123456';
const baseUrl = process.env.TEST_DATABASE_URL;
const dbName = `iot_secrets_${process.pid}_${Date.now().toString(36)}`;
const ownUrl = baseUrl ? Object.assign(new URL(baseUrl), { pathname: `/${dbName}` }).toString() : undefined;
const admin = baseUrl ? postgres(baseUrl, { max: 1, onnotice: () => {} }) : undefined;

const dirs: string[] = [];
const procs: Spawned[] = [];
const clients: MqttClient[] = [];
afterAll(async () => {
  for (const c of clients) c.end(true);
  for (const p of procs) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exit()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  if (admin) {
    await admin.unsafe(`alter database ${dbName} allow_connections true`).catch(() => {});
    await admin.unsafe(`drop database if exists ${dbName} with (force)`);
    await admin.end();
  }
});

async function call(base: string, method: string, url: string, token: string | undefined, body?: unknown) {
  const res = await fetch(base + url, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const json = (await res.json()) as { result: boolean; info: any }; // eslint-disable-line @typescript-eslint/no-explicit-any -- API JSON
  if (!json.result) throw new Error(`${method} ${url} failed: ${JSON.stringify(json)}`);
  return json.info;
}

const readyz = async (http: string) => {
  const res = await fetch(`${http}/readyz`);
  return { status: res.status, body: (await res.json()) as { result: boolean; errors?: Array<{ path: string }> } };
};

/** A device login whose credentials reach the database as query parameters and fail there. */
async function failingLogin(mqttUrl: string, username: string, password: string): Promise<void> {
  const c = mqtt.connect(mqttUrl, { username, password, reconnectPeriod: 0, connectTimeout: 20_000 });
  clients.push(c);
  await new Promise<void>((resolve) => {
    c.once('connect', () => resolve());
    c.once('error', () => resolve());
    c.once('close', () => resolve());
  });
  c.end(true);
}

describe('secrets and health of the running server', () => {
  it('logs no credential, keeps DATA_DIR owner-only, and answers /readyz honestly', async () => {
    if (admin) await admin.unsafe(`create database ${dbName}`);
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'iot-secrets-'));
    dirs.push(dataDir);
    // As an older version left it: readable by everybody.
    chmodSync(dataDir, 0o755);
    writeFileSync(path.join(dataDir, 'jwt-secret'), 'a-secret-an-older-version-generated-0123456789\n', {
      mode: 0o644,
    });
    const server = spawnTs('src/main.ts', [], {
      DATA_DIR: dataDir,
      ...(ownUrl ? { DATABASE_URL: ownUrl } : {}),
      HOST: '127.0.0.1',
      HTTP_PORT: '0',
      MQTT_PORT: '0',
      TCP_PORT: '0',
      LOG_LEVEL: 'trace',
      NODE_ENV: 'development',
      PLATFORM_TOKEN,
      READINESS_DB_TIMEOUT_MS: '1000',
      SHUTDOWN_DRAIN_MS: '5000',
    });
    procs.push(server);
    const [, http] = await server.waitFor(/Server listening at (http:\/\/127\.0\.0\.1:\d+)/, 90_000);
    const [, mqttUrl] = await server.waitFor(/MQTT listening at (mqtt:\/\/127\.0\.0\.1:\d+)/, 30_000);
    await expect.poll(() => readyz(http!).then((r) => r.status), { timeout: 30_000 }).toBe(200);
    expect((await fetch(`${http}/livez`)).status).toBe(200);

    const project = await call(http!, 'POST', '/platform/v1/projects', PLATFORM_TOKEN, { name: 'secrets' });
    const token = (await call(http!, 'POST', '/api/v1/access_token', undefined, project.app)).access_token as string;
    await call(http!, 'POST', '/api/v1/admin_login', undefined, { app_id: project.app.app_id, ...project.admin });
    const view = await call(http!, 'POST', '/api/v1/view_key', token, {});
    const device = await call(http!, 'POST', '/api/v1/device', token, { name: 'leaky' });
    const accessToken = (await call(http!, 'GET', `/api/v1/device/${device.id}/certificate`, token))
      .access_token as string;
    const secrets = {
      project_key: project.project_key as string,
      access_token: accessToken,
      secret_key: project.app.secret_key as string,
      view_secret: view.view_secret as string,
      admin_password: project.admin.password as string,
    };
    for (const [name, value] of Object.entries(secrets)) expect(value, name).toMatch(/^\S{8,}$/);

    // Connect and report over MQTT and HTTP (the device API has the token in its path).
    const d = await mqtt.connectAsync(mqttUrl!, {
      username: accessToken,
      password: secrets.project_key,
      reconnectPeriod: 0,
    });
    clients.push(d);
    await d.publishAsync('attributes', JSON.stringify({ temperature: 21.5 }), { qos: 1 });
    const httpReport = await fetch(`${http}/device/v1/${accessToken}/attributes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'project-key': secrets.project_key },
      body: JSON.stringify({ temperature: 22 }),
    });
    expect(httpReport.status).toBe(200);

    // A NUL in a credential is refused as a bad login before any query (it used to reach the database).
    await failingLogin(mqttUrl!, `${accessToken}\u0000`, secrets.project_key);

    if (admin) {
      // An outage of the server's database: no new connections, every backend terminated.
      await admin.unsafe(`alter database ${dbName} allow_connections false`);
      await admin`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${dbName}`;
      const down = await readyz(http!);
      expect(down.status).toBe(503);
      expect(down.body.errors?.map((e) => e.path)).toContain('database');
      expect((await fetch(`${http}/livez`)).status).toBe(200);
      // The device's login and HTTP report fail in the database with the credentials as parameters.
      await failingLogin(mqttUrl!, accessToken, secrets.project_key);
      await failingLogin(mqttUrl!, view.view_key, secrets.view_secret);
      // Held until the database is back (a report is answered once stored).
      const heldReport = fetch(`${http}/device/v1/${accessToken}/attributes`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'project-key': secrets.project_key },
        body: JSON.stringify({ temperature: 23 }),
      });
      await admin.unsafe(`alter database ${dbName} allow_connections true`);
      await expect.poll(() => readyz(http!).then((r) => r.status), { timeout: 60_000, interval: 200 }).toBe(200);
      expect((await heldReport).status).toBe(200);
      await server.waitFor(/authentication failed|unhandled error/, 10_000);
    }

    // Owner-only: DATA_DIR, the embedded database's files, the JWT secret, the lock.
    const mode = (p: string) => statSync(p).mode & 0o777;
    expect(mode(dataDir)).toBe(0o700);
    expect(mode(path.join(dataDir, 'jwt-secret'))).toBe(0o600);
    if (!admin) {
      expect(mode(path.join(dataDir, 'lock'))).toBe(0o600);
      expect(mode(path.join(dataDir, 'control.sock'))).toBe(0o600);
      // Everything the embedded database wrote, its WAL included, after reports were stored.
      const open: string[] = [];
      for (const entry of readdirSync(path.join(dataDir, 'pg'), { recursive: true, withFileTypes: true })) {
        const full = path.join(entry.parentPath, entry.name);
        if (mode(full) & 0o077) open.push(`${path.relative(dataDir, full)} ${mode(full).toString(8)}`);
      }
      expect(mode(path.join(dataDir, 'pg'))).toBe(0o700);
      expect(open).toEqual([]);
      expect(readdirSync(path.join(dataDir, 'pg', 'pg_wal')).length).toBeGreaterThan(0);
    }

    // Draining: not ready, still alive, then a clean exit.
    server.child.kill('SIGTERM');
    await server.waitFor(/"msg":"draining"/, 10_000);
    const draining = await readyz(http!);
    expect(draining.status).toBe(503);
    expect(draining.body.errors?.map((e) => e.path)).toContain('draining');
    expect((await fetch(`${http}/livez`)).status).toBe(200);
    expect(await server.exit()).toBe(0);

    const log = server.output();
    // On PostgreSQL the outage put driver errors carrying the credentials as parameters into the log.
    if (admin) expect(log).toMatch(/authentication failed/);
    const leaked = Object.entries(secrets)
      .filter(([, value]) => log.includes(value))
      .map(([name]) => name);
    expect(leaked).toEqual([]);
  }, 240_000);
});
