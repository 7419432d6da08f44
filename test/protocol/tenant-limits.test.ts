import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDevice, grantedQos } from '../helpers/mqtt.ts';
import { startTestBroker, type TestBroker } from '../helpers/broker.ts';
import {
  createProject,
  createTestApp,
  deviceWithToken,
  expectFailure,
  expectOk,
  type ProjectFixture,
  type TestContext,
} from '../helpers/app.ts';

/**
 * One tenant's load stays its own (README "Security and limits"): a device holds a bounded number
 * of subscriptions, a project's devices share a message budget and cannot raise their rate past the
 * operator's ceiling, and a device type carries a bounded number of alarm rules.
 */
const PROJECT_RATE = 300;
let ctx: TestContext;
let tb: TestBroker;
const clients: MqttClient[] = [];

beforeAll(async () => {
  ctx = await createTestApp(
    {},
    { settings: { projectMessageRate: PROJECT_RATE, deviceRateLimit: 1_000, deviceRateLimitMax: 5_000 } },
  );
  tb = await startTestBroker(ctx);
});
afterAll(async () => {
  for (const c of clients) c.end(true);
  await tb?.close();
  await ctx?.close();
});

const deviceOf = (p: ProjectFixture) => deviceWithToken(p);
async function connect(p: ProjectFixture, token: string) {
  return connectDevice(tb.url, { token, projectKey: p.project.project_key }, {}, clients);
}
const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.99)]!;

describe('tenant limits', () => {
  it('grants a device connection at most MQTT_MAX_SUBSCRIPTIONS filters; answers keep working', async () => {
    const p = await createProject(ctx, 'subscriber');
    const d = await deviceOf(p);
    const c = await connect(p, d.token);
    const filters = Array.from({ length: 150 }, (_, i) => `attributes/get/response/${i}`);
    // mqtt.js rejects a SUBSCRIBE with any refused filter; the SUBACK is on the error.
    const granted = await grantedQos(c, filters);
    expect(granted.filter((q) => q < 128)).toHaveLength(100);
    expect(granted.slice(100).every((q) => q === 128)).toBe(true);
    // Unsubscribing makes room again.
    await c.unsubscribeAsync(filters.slice(0, 10));
    expect((await c.subscribeAsync(['attributes/response'])).map((g) => g.qos)).toEqual([0]);
    const answer = new Promise<Buffer>((r) => c.once('message', (_t, m) => r(m)));
    await c.publishAsync('attributes', JSON.stringify({ t: 1 }), { qos: 1 });
    expect(JSON.parse((await answer).toString())).toMatchObject({ result: 1 });
  });

  it("holds a flooding project to its budget while another project's reports are acknowledged promptly", async () => {
    const flood = await createProject(ctx, 'flood');
    const calm = await createProject(ctx, 'calm');
    const flooders = await Promise.all(
      Array.from({ length: 4 }, async () => connect(flood, (await deviceOf(flood)).token)),
    );
    const calmDevice = await deviceOf(calm);
    const good = await connect(calm, calmDevice.token);
    let stop = false;
    let accepted = 0;
    const pumps = flooders.map(async (c) => {
      while (!stop) {
        await Promise.all(
          Array.from({ length: 20 }, () =>
            c.publishAsync('attributes', JSON.stringify({ x: 1 }), { qos: 1 }).then(() => accepted++),
          ),
        );
      }
    });
    const started = Date.now();
    const latencies: number[] = [];
    for (let i = 0; i < 40; i++) {
      const t0 = performance.now();
      await good.publishAsync('attributes', JSON.stringify({ n: i }), { qos: 1 });
      latencies.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 25));
    }
    stop = true;
    const seconds = (Date.now() - started) / 1000;
    await Promise.all(pumps);
    // The flood got no more than its budget (plus the burst and what was in flight): without the
    // budget it gets 5–6 times as much here. The other project's reports never stall (in this one
    // process the clients share the event loop with the server, so the bound is loose; bench/ingest
    // measures latencies on a real server).
    expect(accepted).toBeLessThanOrEqual(PROJECT_RATE * (seconds + 2) + 80);
    expect(p99(latencies)).toBeLessThan(1_000);
  }, 60_000);

  it("counts a gateway's sub-device reports against the project budget, one per sub-device", async () => {
    const p = await createProject(ctx, 'gateway budget');
    const gwType = expectOk(await p.api.post('/api/v1/device_type', { name: 'gw', conn_type: '3' }));
    const subType = expectOk(await p.api.post('/api/v1/device_type', { name: 'sub', conn_type: '2' }));
    const gwId = expectOk(await p.api.post('/api/v1/device', { name: 'gw', type: gwType.id })).id as string;
    const gwToken = expectOk(await p.api.get(`/api/v1/device/${gwId}/certificate`)).access_token as string;
    const addresses = Array.from({ length: 30 }, (_, i) => `s${i}`);
    for (const address of addresses) {
      const sub = expectOk(await p.api.post('/api/v1/device', { name: address, type: subType.id }));
      expectOk(await p.api.post(`/api/v1/device/${gwId}/sub_devices`, { device: sub.id, address }));
    }
    const c = await connect(p, gwToken);
    for (const address of addresses)
      await c.publishAsync('gateway/connect', JSON.stringify({ device: address }), { qos: 1 });
    // 30 messages of 30 sub-device reports: 900 reports against a budget of 300/s (bursts of 600).
    const body = JSON.stringify(Object.fromEntries(addresses.map((a) => [a, { x: 1 }])));
    const t0 = Date.now();
    await Promise.all(Array.from({ length: 30 }, () => c.publishAsync('gateway/attributes', body, { qos: 1 })));
    expect(Date.now() - t0).toBeGreaterThan(700);
  }, 60_000);

  it('refuses a project device rate above the operator ceiling (DEVICE_RATE_LIMIT_MAX)', async () => {
    const p = await createProject(ctx, 'greedy');
    expectFailure(await p.api.put('/api/v1/project/settings', { device_rate_limit: 100_000 }), 400);
    expect(
      expectOk(await p.api.put('/api/v1/project/settings', { device_rate_limit: 5_000 })).effective.device_rate_limit,
    ).toBe(5_000);
  });

  it('refuses more than 100 alarm rules on one device type', async () => {
    const p = await createProject(ctx, 'rules');
    const type = expectOk(await p.api.post('/api/v1/device_type', { name: 't' }));
    const other = expectOk(await p.api.post('/api/v1/device_type', { name: 'u' }));
    const rule = (typeId: string, i: number) => ({
      name: `r${i}`,
      device_type_id: typeId,
      level: 1,
      condition: { kind: 'attribute', identifier: 'x', op: '>', value: i },
    });
    for (let i = 0; i < 100; i++) expectOk(await p.api.post('/api/v1/alarm_rule', rule(type.id, i)));
    expectFailure(await p.api.post('/api/v1/alarm_rule', rule(type.id, 100)), 422);
    const moved = expectOk(await p.api.post('/api/v1/alarm_rule', rule(other.id, 0)));
    expectFailure(await p.api.put(`/api/v1/alarm_rule/${moved.id}`, { device_type_id: type.id }), 422);
  }, 60_000);
});

describe('application subscriber limits', () => {
  it('grants a subscriber at most 1,000 filters, and its UNSUBSCRIBE frees them', async () => {
    const p = await createProject(ctx, 'viewer');
    const view = expectOk(await p.api.post('/api/v1/view_key', {}));
    const c = await mqtt.connectAsync(tb.url, {
      username: view.view_key,
      password: view.view_secret,
      reconnectPeriod: 0,
    });
    clients.push(c);
    const subscribe = (filters: string[]) =>
      new Promise<number[]>((resolve) =>
        c.subscribe(filters, (err, g) =>
          resolve(
            (err as (Error & { packet?: { granted?: number[] } }) | null)?.packet?.granted ??
              (g ?? []).map((x) => x.qos),
          ),
        ),
      );
    const filters = Array.from({ length: 1_010 }, (_, i) => `${view.view_key}/token${i}/attributes`);
    const granted = await subscribe(filters);
    expect(granted.filter((q) => q === 0)).toHaveLength(1_000);
    await c.unsubscribeAsync(filters.slice(0, 5));
    expect(await subscribe([`${view.view_key}/+/online`])).toEqual([0]);
  });
});

describe('application subscribers per project', () => {
  it('refuses subscribers beyond the per-project limit; another project is not affected', async () => {
    const small = await startTestBroker(ctx, { maxViewersPerProject: 3 });
    try {
      const login = async (username: string, password: string) => {
        try {
          const c = await mqtt.connectAsync(small.url, { username, password, reconnectPeriod: 0 });
          clients.push(c);
          return 0;
        } catch (err) {
          return (err as { code?: number }).code ?? -1;
        }
      };
      const a = expectOk(await (await createProject(ctx, 'viewers a')).api.post('/api/v1/view_key', {}));
      const b = expectOk(await (await createProject(ctx, 'viewers b')).api.post('/api/v1/view_key', {}));
      const results: number[] = [];
      for (let i = 0; i < 5; i++) results.push(await login(a.view_key, a.view_secret));
      expect(results).toEqual([0, 0, 0, 5, 5]);
      expect(await login(b.view_key, b.view_secret)).toBe(0);
    } finally {
      await small.close();
    }
  });
});
