import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { createPrivatePostgres, type PrivatePostgres } from '../helpers/db.ts';
import { serverEnv, spawnTs, type Spawned } from '../helpers/process.ts';

/**
 * What the server promises across a crash, proven against the real process (architecture.md §11):
 * every QoS 1 report it acknowledged is in history exactly once after a SIGKILL and a restart,
 * and a command queued for an offline device is still delivered after the restart.
 * Runs on PostgreSQL when TEST_DATABASE_URL is set, else on the embedded database.
 */
const PLATFORM_TOKEN = 'durability-platform-token-0123';
const dirs: string[] = [];
const procs: Spawned[] = [];
const clients: MqttClient[] = [];
/** With TEST_DATABASE_URL, a database of its own: the server sets every device of its database offline at start. */
let pg: PrivatePostgres | undefined;
afterAll(async () => {
  for (const c of clients) c.end(true);
  for (const p of procs) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exit()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await pg?.drop();
});

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'iot-durability-'));
dirs.push(dataDir);

async function startServer() {
  const server = spawnTs(
    'src/main.ts',
    [],
    serverEnv(dataDir, pg?.url, {
      PLATFORM_TOKEN,
      JWT_SECRET: 'durability-jwt-secret-0123456789abcdef',
      MQTT_RATE_LIMIT: '100000',
    }),
  );
  procs.push(server);
  const [, http] = await server.waitFor(/Server listening at (http:\/\/127\.0\.0\.1:\d+)/, 90_000);
  const [, mqttUrl] = await server.waitFor(/MQTT listening at (mqtt:\/\/127\.0\.0\.1:\d+)/, 30_000);
  return { server, http: http!, mqttUrl: mqttUrl! };
}

async function call(base: string, method: string, url: string, token: string, body?: unknown) {
  const res = await fetch(base + url, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const json = (await res.json()) as { result: boolean; info: any }; // eslint-disable-line @typescript-eslint/no-explicit-any -- API JSON
  if (!json.result) throw new Error(`${method} ${url} failed: ${JSON.stringify(json)}`);
  return json.info;
}

describe('a hard kill of the server process', () => {
  it('loses no acknowledged report and no queued command', async () => {
    pg = await createPrivatePostgres();
    let { server, http, mqttUrl } = await startServer();
    const project = await call(http, 'POST', '/platform/v1/projects', PLATFORM_TOKEN, { name: 'durability' });
    const login = await fetch(`${http}/api/v1/access_token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(project.app),
    }).then((r) => r.json());
    const token = (login as { info: { access_token: string } }).info.access_token;
    const reporter = await call(http, 'POST', '/api/v1/device', token, { name: 'reporter' });
    const sleeper = await call(http, 'POST', '/api/v1/device', token, { name: 'sleeper' });
    const reporterToken = (await call(http, 'GET', `/api/v1/device/${reporter.id}/certificate`, token)).access_token;
    const sleeperToken = (await call(http, 'GET', `/api/v1/device/${sleeper.id}/certificate`, token)).access_token;

    // A command for the offline device, queued for an hour.
    const queued = await call(http, 'POST', `/api/v1/control/device/${sleeper.id}/command`, token, {
      method: 'reboot',
      params: { delay: 1 },
      ttl: 3600,
    });
    expect(queued.state).toBe('queued');

    // QoS 1 reports with a sequence number, 32 in flight, until the kill.
    const c = mqtt.connect(mqttUrl, {
      username: reporterToken,
      password: project.project_key,
      reconnectPeriod: 0,
      clientId: 'reporter',
    });
    clients.push(c);
    c.on('error', () => {});
    await new Promise((resolve, reject) => c.once('connect', resolve).once('error', reject));
    const acked = new Set<number>();
    let seq = 0;
    let killed = false;
    const pump = () => {
      if (killed || c.disconnected || c.disconnecting) return;
      const n = seq++;
      c.publish('attributes', JSON.stringify({ seq: n }), { qos: 1 }, (err) => {
        if (!err) acked.add(n);
        pump();
      });
    };
    for (let i = 0; i < 32; i++) pump();
    await expect.poll(() => acked.size, { timeout: 60_000, interval: 20 }).toBeGreaterThanOrEqual(400);
    killed = true;
    server.child.kill('SIGKILL');
    await server.exit();
    const ackedAtKill = [...acked];
    c.end(true);

    ({ server, http, mqttUrl } = await startServer());
    const relogin = await fetch(`${http}/api/v1/access_token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(project.app),
    }).then((r) => r.json());
    const token2 = (relogin as { info: { access_token: string } }).info.access_token;

    // Every acknowledged report is in history exactly once.
    const stored: number[] = [];
    for (let page = 1; ; page++) {
      const items = await call(
        http,
        'GET',
        `/api/v1/device/${reporter.id}/attribute/seq/series?page=${page}&page_records=1000`,
        token2,
      );
      stored.push(...items.map((i: { value: number }) => i.value));
      if (items.length < 1000) break;
    }
    const counts = new Map<number, number>();
    for (const v of stored) counts.set(v, (counts.get(v) ?? 0) + 1);
    expect(ackedAtKill.filter((n) => counts.get(n) !== 1)).toEqual([]);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    // The current value is a report of the newest time in history (recovered from it after the crash).
    // Reports arrive many per millisecond: any of the values at that time is "newest".
    const newestTs = (
      await call(http, 'GET', `/api/v1/device/${reporter.id}/attribute/seq/series?page_records=1`, token2)
    )[0].ts;
    const atNewest = await call(
      http,
      'GET',
      `/api/v1/device/${reporter.id}/attribute/seq/series?page_records=1000&start_time=${newestTs}&end_time=${newestTs}`,
      token2,
    );
    const current = await call(http, 'GET', `/api/v1/device/${reporter.id}/attributes`, token2);
    const seqNow = current.find((a: { identifier: string }) => a.identifier === 'seq');
    expect(seqNow?.ts).toBe(newestTs);
    expect(atNewest.map((i: { value: number }) => i.value)).toContain(seqNow?.value);

    // The queued command survived and reaches the device when it connects and subscribes.
    const d = await mqtt.connectAsync(mqttUrl, {
      username: sleeperToken,
      password: project.project_key,
      reconnectPeriod: 0,
    });
    clients.push(d);
    const received = new Promise<{ topic: string; body: { method: string; params: unknown; id: number } }>((resolve) =>
      d.on('message', (topic, payload) => resolve({ topic, body: JSON.parse(payload.toString()) })),
    );
    await d.subscribeAsync('command/send/+');
    const { topic, body } = await received;
    expect(body).toEqual({ method: 'reboot', params: { delay: 1 }, id: queued.command_id });
    expect(topic).toBe(`command/send/${queued.command_id}`);
    const log = await call(http, 'GET', `/api/v1/device/${sleeper.id}/commands`, token2);
    expect(log.items[0]).toMatchObject({ state: 'sent' });

    server.child.kill('SIGTERM');
    expect(await server.exit()).toBe(0);
  }, 240_000);
});
