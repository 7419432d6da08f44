import { once } from 'node:events';
import net from 'node:net';
import type { IClientOptions, MqttClient } from 'mqtt';
import postgres from 'postgres';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createProject,
  createTestApp,
  deviceWithToken,
  expectOk,
  type ProjectFixture,
  type TestContext,
} from '../helpers/app.ts';
import { startTestBroker, type TestBroker } from '../helpers/broker.ts';
import { connectDevice } from '../helpers/mqtt.ts';
import { createPrivatePostgres, type PrivatePostgres } from '../helpers/db.ts';
import { openPostgres } from '../../src/db/client.ts';

/**
 * An acknowledgement is a promise (README "Security and limits"): a QoS 1 PUBACK is sent
 * only once the report is stored; a report that cannot be stored is never acknowledged; over the
 * device's rate a QoS 1 report waits instead of being acknowledged and dropped.
 */
const clients: MqttClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.end(true);
});

const deviceOf = deviceWithToken;

async function connect(url: string, p: ProjectFixture, token: string, opts: IClientOptions = {}) {
  return connectDevice(url, { token, projectKey: p.project.project_key }, { reconnectPeriod: 100, ...opts }, clients);
}

/** The values of `identifier` in the device's history, sorted. */
async function stored(ctx: TestContext, projectId: string, deviceId: string, identifier = 'n') {
  const points = await ctx.services.historyStore.series(
    projectId,
    deviceId,
    identifier,
    Date.now() - 3_600_000,
    Date.now() + 60_000,
    100_000,
    0,
  );
  return points.map((p) => p.value as number).sort((a, b) => a - b);
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('QoS 1 over the rate limit', () => {
  let ctx: TestContext;
  let tb: TestBroker;
  beforeAll(async () => {
    ctx = await createTestApp({}, { settings: { deviceRateLimit: 50 } });
    tb = await startTestBroker(ctx);
  });
  afterAll(async () => {
    await tb?.close();
    await ctx?.close();
  });

  it('slows a device bursting at 8× its rate down instead of acknowledging and dropping (acked == stored)', async () => {
    const p = await createProject(ctx, 'burst');
    const d = await deviceOf(p);
    const c = await connect(tb.url, p, d.token);
    const t0 = Date.now();
    // 400 at once against 50/s (a burst of 100): everything is acknowledged, the last ones ~6 s later.
    await Promise.all(range(400).map((i) => c.publishAsync('attributes', JSON.stringify({ n: i }), { qos: 1 })));
    expect(Date.now() - t0).toBeGreaterThan(4_000);
    await ctx.services.ingest.flush();
    expect(await stored(ctx, p.project.id, d.id)).toEqual(range(400));
  }, 30_000);

  it('does the same for a gateway reporting for its sub-devices', async () => {
    const p = await createProject(ctx, 'gateway burst');
    const gwType = expectOk(await p.api.post('/api/v1/device_type', { name: 'gw', conn_type: '3' }));
    const subType = expectOk(await p.api.post('/api/v1/device_type', { name: 'sub', conn_type: '2' }));
    const gw = await deviceOf(p, { name: 'gw', type: gwType.id });
    const sub = await deviceOf(p, { name: 'sub', type: subType.id });
    expectOk(await p.api.post(`/api/v1/device/${gw.id}/sub_devices`, { device: sub.id, address: 's1' }));
    const c = await connect(tb.url, p, gw.token);
    await c.publishAsync('gateway/connect', JSON.stringify({ device: 's1' }), { qos: 1 });
    await Promise.all(
      range(300).map((i) => c.publishAsync('gateway/attributes', JSON.stringify({ s1: { n: i } }), { qos: 1 })),
    );
    await ctx.services.ingest.flush();
    expect(await stored(ctx, p.project.id, sub.id)).toEqual(range(300));
  }, 30_000);

  it('refuses QoS 1 reports that would wait more than 10 s visibly (MQTT 5: PUBACK 0x97; 3.1.1: closed), never acknowledging them', async () => {
    const p = await createProject(ctx, 'refused');
    expectOk(await p.api.put('/api/v1/project/settings', { device_rate_limit: 1 }));
    const d5 = await deviceOf(p);
    const v5 = await connect(tb.url, p, d5.token, { protocolVersion: 5 });
    // At 1/s (bursts of 2) about 12 can be held within 10 s; the rest of 20 are refused at once.
    const outcomes = await Promise.all(
      range(20).map((i) =>
        v5.publishAsync('attributes', JSON.stringify({ n: i }), { qos: 1 }).then(
          () => 0,
          (err: { code?: number }) => err.code ?? -1,
        ),
      ),
    );
    const refused = outcomes.filter((c) => c === 0x97).length;
    expect(refused).toBeGreaterThan(0);
    expect(outcomes.filter((c) => c !== 0 && c !== 0x97)).toEqual([]);
    await ctx.services.ingest.flush();
    expect((await stored(ctx, p.project.id, d5.id)).length).toBe(outcomes.filter((c) => c === 0).length);
    const d4 = await deviceOf(p);
    const v4 = await connect(tb.url, p, d4.token, { protocolVersion: 4, reconnectPeriod: 0 });
    const closed = new Promise<void>((r) => v4.once('close', () => r()));
    for (const i of range(20)) v4.publish('attributes', JSON.stringify({ n: i }), { qos: 1 });
    await closed;
    await ctx.services.ingest.flush();
    // What was acknowledged is what is stored (the held ones of the closed connection are not).
    expect((await stored(ctx, p.project.id, d4.id)).length).toBeLessThan(20);
  }, 30_000);

  it('HTTP device reports over the rate get 429 with Retry-After and store nothing (stored == answered result 1)', async () => {
    const p = await createProject(ctx, 'http');
    const d = await deviceOf(p);
    const answers = await Promise.all(
      range(150).map((i) =>
        ctx.app.inject({
          method: 'POST',
          url: `/device/v1/${d.token}/attributes`,
          headers: { 'project-key': p.project.project_key },
          payload: { n: i },
        }),
      ),
    );
    const ok = answers.filter((a) => a.json().result === 1);
    const limited = answers.filter((a) => a.statusCode === 429);
    expect(ok.length + limited.length).toBe(150);
    expect(limited.length).toBeGreaterThan(0);
    expect(Number(limited[0]!.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(limited[0]!.json()).toMatchObject({ result: 0, errcode: 429 });
    await ctx.services.ingest.flush();
    expect((await stored(ctx, p.project.id, d.id)).length).toBe(ok.length);
  });

  it('still drops QoS 0 reports over the rate, answering 429', async () => {
    const p = await createProject(ctx, 'qos0');
    // A lower rate (still under the flood threshold of ten times it): much of the burst is over it
    // even on a slow machine.
    expectOk(await p.api.put('/api/v1/project/settings', { device_rate_limit: 30 }));
    const d = await deviceOf(p);
    const c = await connect(tb.url, p, d.token);
    await c.subscribeAsync('attributes/response');
    const answers: number[] = [];
    c.on('message', (_t, m) => answers.push(JSON.parse(m.toString()).errcode ?? 0));
    for (const i of range(300)) c.publish('attributes', JSON.stringify({ n: i }), { qos: 0 });
    await expect.poll(() => answers.length, { timeout: 10_000 }).toBe(300);
    expect(answers.filter((e) => e === 429).length).toBeGreaterThan(100);
  }, 30_000);
});

describe('a report that cannot be stored is not acknowledged', () => {
  let ctx: TestContext;
  let tb: TestBroker;
  beforeAll(async () => {
    ctx = await createTestApp();
    tb = await startTestBroker(ctx, { rateLimit: 10_000 });
  });
  afterAll(async () => {
    await tb?.close();
    await ctx?.close();
  });

  /** Makes the next `n` reports fail with a server fault (not a database outage). */
  function failNext(n: number) {
    const report = ctx.services.currentValues.report;
    let left = n;
    ctx.services.currentValues.report = (...args) => {
      if (left-- > 0) return Promise.reject(new Error('simulated server fault'));
      return report(...args);
    };
    return () => (ctx.services.currentValues.report = report);
  }

  it('MQTT 3.1.1: closes the connection without PUBACK; the device sends again and the report is stored once', async () => {
    const p = await createProject(ctx, 'v4');
    const d = await deviceOf(p);
    const c = await connect(tb.url, p, d.token, { protocolVersion: 4 });
    let closes = 0;
    c.on('close', () => closes++);
    const restore = failNext(1);
    try {
      await c.publishAsync('attributes', JSON.stringify({ n: 7 }), { qos: 1 });
    } finally {
      restore();
    }
    expect(closes).toBeGreaterThanOrEqual(1);
    await ctx.services.ingest.flush();
    expect(await stored(ctx, p.project.id, d.id)).toEqual([7]);
  });

  it('MQTT 5: answers PUBACK 0x80 and stores nothing', async () => {
    const p = await createProject(ctx, 'v5');
    const d = await deviceOf(p);
    const c = await connect(tb.url, p, d.token, { protocolVersion: 5 });
    const restore = failNext(1);
    try {
      await expect(c.publishAsync('attributes', JSON.stringify({ n: 8 }), { qos: 1 })).rejects.toMatchObject({
        code: 0x80,
      });
    } finally {
      restore();
    }
    expect(c.connected).toBe(true);
    await c.publishAsync('attributes', JSON.stringify({ n: 9 }), { qos: 1 });
    await ctx.services.ingest.flush();
    expect(await stored(ctx, p.project.id, d.id)).toEqual([9]);
  });
});

/**
 * A database that refuses connections for 5 s (`ALLOW_CONNECTIONS false`, its backends ended):
 * reports wait and are acknowledged once stored. Needs PostgreSQL: the embedded database has no
 * connections to lose.
 */
describe.skipIf(!process.env.TEST_DATABASE_URL)('QoS 1 through a database outage', () => {
  let own: PrivatePostgres;
  let ctx: TestContext;
  let tb: TestBroker;
  let admin: postgres.Sql;
  let name: string;
  beforeAll(async () => {
    own = (await createPrivatePostgres())!;
    name = new URL(own.url).pathname.slice(1);
    const database = await openPostgres(own.url, { max: 4 });
    ctx = await createTestApp({}, { database, settings: { ingestBatchDelayMs: 2 } });
    tb = await startTestBroker(ctx, { rateLimit: 10_000 });
    admin = postgres(process.env.TEST_DATABASE_URL!, { max: 1, onnotice: () => {} });
  });
  afterAll(async () => {
    await admin?.unsafe(`alter database ${name} allow_connections true`).catch(() => {});
    await admin?.end({ timeout: 5 });
    await tb?.close();
    await ctx?.close();
    await own?.drop();
  });

  it('acknowledges every report only once stored, and all of them after the outage', async () => {
    const p = await createProject(ctx, 'outage');
    const d = await deviceOf(p);
    const c = await connect(tb.url, p, d.token, { protocolVersion: 4 });
    const acked = new Set<number>();
    const sends: Array<Promise<unknown>> = [];
    const send = (i: number) =>
      sends.push(c.publishAsync('attributes', JSON.stringify({ n: i }), { qos: 1 }).then(() => acked.add(i)));
    let i = 0;
    const timer = setInterval(() => send(i++), 50);
    try {
      await new Promise((r) => setTimeout(r, 1_000));
      await admin.unsafe(`alter database ${name} allow_connections false`);
      await admin`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${name}`;
      const blockedAt = i;
      await new Promise((r) => setTimeout(r, 5_000));
      // What was acknowledged during the outage must be stored: checked below with everything.
      expect(i - blockedAt).toBeGreaterThan(50);
      await admin.unsafe(`alter database ${name} allow_connections true`);
      await new Promise((r) => setTimeout(r, 1_000));
    } finally {
      clearInterval(timer);
    }
    await Promise.all(sends);
    expect(acked.size).toBe(i);
    await ctx.services.ingest.flush();
    const values = await stored(ctx, p.project.id, d.id);
    expect(new Set(values).size).toBe(i);
    expect(values.length).toBe(i);
  }, 60_000);
});

/**
 * A database link that goes silent (no reset, no answer: a dead socket, a partition) for 5 s and comes
 * back: the writes in flight wait, nothing is acknowledged before it is stored, and everything is
 * stored once. A TCP relay between the server and PostgreSQL stops relaying for the outage.
 */
describe.skipIf(!process.env.TEST_DATABASE_URL)('QoS 1 through a silent database link', () => {
  let own: PrivatePostgres;
  let ctx: TestContext;
  let tb: TestBroker;
  let relay: net.Server;
  let stalled = false;
  const held: Array<() => void> = [];
  beforeAll(async () => {
    own = (await createPrivatePostgres())!;
    const target = new URL(own.url);
    relay = net.createServer((client) => {
      const server = net.connect(Number(target.port || 5432), target.hostname);
      const forward = (from: net.Socket, to: net.Socket) =>
        from.on('data', (chunk) => {
          if (!stalled) return void to.write(chunk);
          from.pause();
          held.push(() => {
            to.write(chunk);
            from.resume();
          });
        });
      forward(client, server);
      forward(server, client);
      client.on('error', () => server.destroy());
      server.on('error', () => client.destroy());
      client.on('close', () => server.destroy());
      server.on('close', () => client.destroy());
    });
    relay.listen(0, '127.0.0.1');
    await once(relay, 'listening');
    const via = new URL(own.url);
    via.host = `127.0.0.1:${(relay.address() as net.AddressInfo).port}`;
    const database = await openPostgres(via.toString(), { max: 4 });
    ctx = await createTestApp({}, { database, settings: { ingestBatchDelayMs: 2 } });
    tb = await startTestBroker(ctx, { rateLimit: 10_000 });
  });
  afterAll(async () => {
    stalled = false;
    for (const release of held.splice(0)) release();
    await tb?.close();
    await ctx?.close();
    relay?.close();
    await own?.drop();
  });

  it('acknowledges nothing while the link is silent, and everything once it is back', async () => {
    const p = await createProject(ctx, 'silent link');
    const d = await deviceOf(p);
    const c = await connect(tb.url, p, d.token, { protocolVersion: 4 });
    const acked = new Set<number>();
    const sends: Array<Promise<unknown>> = [];
    let i = 0;
    const timer = setInterval(() => {
      const n = i++;
      sends.push(c.publishAsync('attributes', JSON.stringify({ n }), { qos: 1 }).then(() => acked.add(n)));
    }, 50);
    let ackedWhileSilent: number | undefined;
    try {
      await new Promise((r) => setTimeout(r, 1_000));
      stalled = true;
      await new Promise((r) => setTimeout(r, 500));
      const before = acked.size;
      await new Promise((r) => setTimeout(r, 4_500));
      ackedWhileSilent = acked.size - before;
      stalled = false;
      for (const release of held.splice(0)) release();
      await new Promise((r) => setTimeout(r, 1_000));
    } finally {
      clearInterval(timer);
    }
    await Promise.all(sends);
    // A report whose batch was already on its way may finish as the link stalls; after that, none.
    expect(ackedWhileSilent).toBe(0);
    expect(acked.size).toBe(i);
    await ctx.services.ingest.flush();
    const values = await stored(ctx, p.project.id, d.id);
    expect(values).toEqual(range(i));
  }, 60_000);
});
