import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { LookupAddress } from 'node:dns';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createNotifyJobsRepository } from '../../src/db/repositories/notify-jobs.repository.ts';
import type { NotifierSettings } from '../../src/domain/alarms/notifier.ts';
import { createProject, createTestApp, expectFailure, expectOk, type TestContext } from '../helpers/app.ts';
import { addDevice, addDeviceType, directIdentity } from '../helpers/factories.ts';
import { openPrivateTestDatabase } from '../helpers/db.ts';

/** A local webhook receiver on port 0; `answer` decides each response (status, or 'hang': accept and never answer). */
async function receiver(host = '127.0.0.1', port = 0) {
  const state = {
    received: [] as Array<{ path: string; attempt: string }>,
    answer: (() => 200) as (n: number) => number | 'hang',
    port: 0,
    sockets: new Set<Socket>(),
    close: async () => {
      for (const s of state.sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      state.received.push({ path: req.url ?? '', attempt: String(req.headers['x-delivery-attempt']) });
      const a = state.answer(state.received.length);
      if (a !== 'hang') res.writeHead(a).end('ok');
    });
  });
  server.on('connection', (s) => {
    state.sockets.add(s);
    s.on('close', () => state.sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  state.port = (server.address() as AddressInfo).port;
  return state;
}
type Receiver = Awaited<ReturnType<typeof receiver>>;

/** Names the tests resolve: `hooks.example.com` is public until a test points it elsewhere. */
const names = new Map<string, string>([
  ['hooks.example.com', '93.184.216.34'],
  ['localhost', '127.0.0.1'],
  ['metadata.example.com', '169.254.169.254'],
]);
const resolve = async (host: string): Promise<LookupAddress[]> => {
  const address = names.get(host);
  if (!address) throw Object.assign(new Error(`${host} not found`), { code: 'ENOTFOUND' });
  return [{ address, family: address.includes(':') ? 6 : 4 }];
};

let now = Date.now();
const clock = () => now;

async function alarmSetup(ctx: TestContext, urls: string[]) {
  const p = await createProject(ctx);
  const type = await addDeviceType(p.api, { name: 'Sensor' });
  const d = await addDevice(p.api, { name: 'boiler', type: type.id });
  const identity = directIdentity(p.project.id, { ...d, type: type.id });
  expectOk(
    await p.api.post('/api/v1/alarm_rule', {
      name: 'hot',
      device_type_id: type.id,
      level: 2,
      condition: { kind: 'attribute', identifier: 'temp', op: '>', value: 30 },
    }),
  );
  const targets = [];
  for (const [i, url] of urls.entries())
    targets.push(expectOk(await p.api.post('/api/v1/notification_target', { name: `t${i}`, url })));
  return { p, identity, targets };
}

async function step(ctx: TestContext, ms = 0) {
  now += ms;
  await ctx.services.alarms.scheduler.runDue();
  await ctx.services.alarms.idle();
}

describe('webhook targets on a default-configured server', () => {
  let ctx: TestContext;
  let hook: Receiver;
  beforeAll(async () => {
    ctx = await createTestApp({}, { clock, settings: { alarmNotify: { timeoutMs: 1_000, resolve } } });
    hook = await receiver();
  });
  afterAll(async () => {
    await ctx?.close();
    await hook?.close();
  });

  it('refuses a non-public address in any notation, or a name resolving to one, at creation and change (400)', async () => {
    const p = await createProject(ctx);
    const refused = [
      'http://127.0.0.1/hook',
      'http://2130706433/hook',
      'http://0x7f000001/hook',
      'http://0177.0.0.1/hook',
      'http://127.1/hook',
      'http://0x7f.1/hook',
      'http://[::1]/hook',
      'http://[::ffff:127.0.0.1]/hook',
      'http://[::ffff:7f00:1]/hook',
      'http://[64:ff9b::7f00:1]/hook',
      'http://[2002:7f00:1::]/hook',
      'http://169.254.169.254/latest/meta-data',
      'http://[fd00:ec2::254]/',
      'http://10.0.0.1/',
      'http://172.16.5.4/',
      'http://192.168.1.1/',
      'http://100.64.0.1/',
      'http://[fe80::1]/',
      'http://[fc00::1]/',
      'http://224.0.0.1/',
      'http://0.0.0.0/',
      'http://255.255.255.255/',
      'http://240.0.0.1/',
      `http://localhost:${hook.port}/hook`,
      'https://metadata.example.com/',
    ];
    for (const url of refused) {
      const body = expectFailure(await p.api.post('/api/v1/notification_target', { name: 'x', url }), 400);
      expect(body.errmsg ?? body.message ?? JSON.stringify(body), url).toMatch(/not allowed/);
    }
    expect(expectOk(await p.api.get('/api/v1/notification_targets')).items).toEqual([]);
    // A name that does not resolve gets the same answer as one resolving to a private address, and
    // the address a name resolved to is not told.
    const unknown = JSON.stringify(
      expectFailure(
        await p.api.post('/api/v1/notification_target', { name: 'x', url: 'https://nowhere.example.com/' }),
        400,
      ),
    );
    const inside = JSON.stringify(
      expectFailure(
        await p.api.post('/api/v1/notification_target', { name: 'x', url: 'https://metadata.example.com/' }),
        400,
      ),
    );
    expect(unknown.replaceAll('nowhere', 'metadata')).toBe(inside);
    expect(inside).toMatch(/host metadata.example.com is not allowed/);
    expect(inside).not.toMatch(/169\.254/);

    const t = expectOk(
      await p.api.post('/api/v1/notification_target', { name: 'ok', url: 'https://hooks.example.com/alarms' }),
    );
    for (const url of ['http://0x7f000001/', 'http://[::ffff:169.254.169.254]/', `http://localhost:${hook.port}/`]) {
      expectFailure(await p.api.put(`/api/v1/notification_target/${t.id}`, { url }), 400);
    }
    expect(expectOk(await p.api.get(`/api/v1/notification_target/${t.id}`)).url).toBe(
      'https://hooks.example.com/alarms',
    );
  });

  it('checks the address again at delivery: a name that now resolves to loopback is not called', async () => {
    const { p, identity } = await alarmSetup(ctx, [`http://hooks.example.com:${hook.port}/rebound`]);
    names.set('hooks.example.com', '127.0.0.1');
    try {
      await ctx.services.currentValues.report(identity, { temp: 35 });
      await step(ctx);
    } finally {
      names.set('hooks.example.com', '93.184.216.34');
    }
    expect(hook.received).toEqual([]);
    const [log] = expectOk(await p.api.get('/api/v1/alarm_logs')).items;
    // Final: a refused address is the target's configuration, not a passing fault.
    expect(log.notify_logs).toMatchObject([{ status: 'failed', error: 'address not allowed', attempt: 1 }]);
    expect(log.notify_logs[0]).not.toHaveProperty('next_attempt_time');
  });
});

describe('webhook deliveries with 127.0.0.0/8 allowed', () => {
  const settings: Partial<NotifierSettings> = {
    timeoutMs: 1_000,
    maxAttempts: 3,
    backoffMs: 1_000,
    allowNetworks: '127.0.0.0/8',
    breakerFailures: 2,
    breakerCooldownMs: 30_000,
    resolve,
  };
  let ctx: TestContext;
  let hook: Receiver;
  beforeAll(async () => {
    ctx = await createTestApp({}, { clock, settings: { alarmNotify: settings } });
    hook = await receiver();
  });
  afterAll(async () => {
    await ctx?.close();
    await hook?.close();
  });

  it('accepts and calls a target in an allowed network; low-level errors reach the tenant as generic words', async () => {
    hook.received = [];
    hook.answer = () => 200;
    const { identity } = await alarmSetup(ctx, [`http://localhost:${hook.port}/a`]);
    await ctx.services.currentValues.report(identity, { temp: 35 });
    await step(ctx);
    expect(hook.received.map((r) => r.path)).toEqual(['/a']);

    // A closed port: "connection failed", not ECONNREFUSED.
    const closed = await receiver();
    await closed.close();
    const b = await alarmSetup(ctx, [`http://127.0.0.1:${closed.port}/`]);
    await ctx.services.currentValues.report(b.identity, { temp: 35 });
    await step(ctx);
    const [log] = expectOk(await b.p.api.get('/api/v1/alarm_logs')).items;
    expect(log.notify_logs[0]).toMatchObject({ status: 'failed', error: 'connection failed' });
    expect(JSON.stringify(log.notify_logs)).not.toMatch(/ECONN|fetch/);
  });

  it('verifies the certificate of an https target: a self-signed one is refused', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'webhook-tls-'));
    let tls: https.Server | undefined;
    try {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:prime256v1',
          '-nodes',
          '-days',
          '2',
          '-subj',
          '/CN=localhost',
          '-addext',
          'subjectAltName=DNS:localhost',
          '-keyout',
          path.join(dir, 'key.pem'),
          '-out',
          path.join(dir, 'cert.pem'),
        ],
        { stdio: 'ignore' },
      );
      let calls = 0;
      const server = https.createServer(
        { key: readFileSync(path.join(dir, 'key.pem')), cert: readFileSync(path.join(dir, 'cert.pem')) },
        (_req, res) => {
          calls++;
          res.writeHead(200).end();
        },
      );
      tls = server;
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { p, identity } = await alarmSetup(ctx, [
        `https://localhost:${(server.address() as AddressInfo).port}/tls`,
      ]);
      await ctx.services.currentValues.report(identity, { temp: 35 });
      await step(ctx);
      expect(calls).toBe(0);
      const [log] = expectOk(await p.api.get('/api/v1/alarm_logs')).items;
      expect(log.notify_logs[0]).toMatchObject({ status: 'failed', error: 'connection failed' });
    } finally {
      await new Promise((resolve) => (tls ? tls.close(resolve) : resolve(undefined)));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('drops the queued and waiting deliveries of a deleted or disabled target', async () => {
    const jobs = createNotifyJobsRepository(ctx.database.db);
    for (const remove of ['delete', 'disable'] as const) {
      hook.received = [];
      hook.answer = () => 503;
      const { p, identity, targets } = await alarmSetup(ctx, [`http://127.0.0.1:${hook.port}/${remove}`]);
      await ctx.services.currentValues.report(identity, { temp: 35 });
      await step(ctx);
      expect(hook.received).toHaveLength(1);
      expect(await jobs.projectJobs(p.project.id)).toHaveLength(1);
      expect(ctx.services.alarms.notifier.projectPending(p.project.id)).toBe(1);

      if (remove === 'delete') expectOk(await p.api.delete(`/api/v1/notification_target/${targets[0].id}`));
      else expectOk(await p.api.put(`/api/v1/notification_target/${targets[0].id}`, { enabled: false }));
      expect(await jobs.projectJobs(p.project.id)).toEqual([]);
      expect(ctx.services.alarms.notifier.projectPending(p.project.id)).toBe(0);
      if (remove === 'disable')
        expectOk(await p.api.put(`/api/v1/notification_target/${targets[0].id}`, { enabled: true }));
      hook.answer = () => 200;
      await step(ctx, 60_000);
      expect(hook.received, remove).toHaveLength(1);
    }
  });

  it('opens a target circuit after consecutive failures: its deliveries are skipped for the cool-down', async () => {
    hook.received = [];
    hook.answer = () => 404; // final answers: one attempt per entry
    const { p, identity, targets } = await alarmSetup(ctx, [`http://127.0.0.1:${hook.port}/breaker`]);
    const flip = async (temp: number) => {
      await ctx.services.currentValues.report(identity, { temp });
      await step(ctx, 1_000);
    };
    await flip(35);
    await flip(20);
    expect(hook.received).toHaveLength(2);
    await flip(36); // the circuit is open: not attempted
    expect(hook.received).toHaveLength(2);
    const [skipped] = expectOk(await p.api.get('/api/v1/alarm_logs')).items;
    expect(skipped.notify_logs).toEqual([
      { target: targets[0].id, time: now, attempt: 1, status: 'skipped', error: 'circuit open' },
    ]);

    now += 30_000; // cool-down over: tried again; a success closes it
    hook.answer = () => 200;
    await flip(21);
    await flip(37);
    expect(hook.received).toHaveLength(4);
    const [last] = expectOk(await p.api.get('/api/v1/alarm_logs')).items;
    expect(last.notify_logs[0]).toMatchObject({ status: 'delivered' });
  });
});

describe('fair delivery across projects', () => {
  let ctx: TestContext;
  let silent: Receiver;
  let hook: Receiver;
  beforeAll(async () => {
    // Real time: the silent targets hold their connections until the timeout.
    ctx = await createTestApp(
      {},
      {
        settings: {
          alarmNotify: {
            timeoutMs: 3_000,
            concurrency: 4,
            projectConcurrency: 2,
            allowNetworks: '127.0.0.0/8',
            resolve,
          },
        },
      },
    );
    silent = await receiver();
    silent.answer = () => 'hang';
    hook = await receiver();
  });
  afterAll(async () => {
    await silent?.close();
    await ctx?.close();
    await hook?.close();
  });

  it("one project's 20 targets that never answer do not delay another project's first attempt", async () => {
    const a = await alarmSetup(
      ctx,
      Array.from({ length: 20 }, (_, i) => `http://127.0.0.1:${silent.port}/a${i}`),
    );
    const b = await alarmSetup(ctx, [`http://127.0.0.1:${hook.port}/b`]);
    await ctx.services.currentValues.report(a.identity, { temp: 35 });
    await vi.waitFor(() => expect(silent.received.length).toBeGreaterThanOrEqual(2), { timeout: 5_000 });
    const t0 = Date.now();
    await ctx.services.currentValues.report(b.identity, { temp: 35 });
    // Before: 20 jobs ahead in one queue, 4 at a time, 3 s each (15 s here; 21 s and more at the defaults).
    await vi.waitFor(() => expect(hook.received).toHaveLength(1), { timeout: 2_000, interval: 20 });
    expect(Date.now() - t0).toBeLessThan(2_000);
    // Project A holds no more than its share of the slots.
    expect(silent.received.length).toBeLessThanOrEqual(2);
    // Its deliveries go with its targets (none is left for a later start on a shared database).
    for (const t of a.targets) expectOk(await a.p.api.delete(`/api/v1/notification_target/${t.id}`));
    expect(ctx.services.alarms.notifier.projectPending(a.p.project.id)).toBeLessThanOrEqual(2);
    expect(await createNotifyJobsRepository(ctx.database.db).projectJobs(a.p.project.id)).toEqual([]);
  });
});

describe('pending deliveries survive a restart', () => {
  it('a retry waiting when the services stop is delivered by the next ones on the same database', async () => {
    const settings = {
      alarmNotify: { timeoutMs: 1_000, maxAttempts: 3, backoffMs: 1_000, allowNetworks: '127.0.0.0/8', resolve },
    };
    const database = await openPrivateTestDatabase();
    const hook = await receiver();
    hook.answer = (n) => (n === 1 ? 503 : 200);
    try {
      const first = await createTestApp({}, { database, clock, settings });
      const { p, identity } = await alarmSetup(first, [`http://127.0.0.1:${hook.port}/r`]);
      await first.services.currentValues.report(identity, { temp: 35 });
      await step(first);
      expect(hook.received).toHaveLength(1);
      await first.app.close();
      await first.services.alarms.stop();
      await first.services.ingest.stop();
      await first.services.currentCache.stop();

      const second = await createTestApp({}, { database, clock, settings });
      try {
        await second.services.alarms.start();
        await step(second, 1_000);
        expect(hook.received.map((r) => r.attempt)).toEqual(['1', '2']);
        const [log] = expectOk(
          await second.app
            .inject({ method: 'GET', url: '/api/v1/alarm_logs', headers: { authorization: `Bearer ${p.appToken}` } })
            .then((r) => ({ status: r.statusCode, body: r.json(), headers: r.headers })),
        ).items;
        expect(log.notify_logs.map((n: { attempt: number; status: string }) => [n.attempt, n.status])).toEqual([
          [1, 'failed'],
          [2, 'delivered'],
        ]);
        expect(await createNotifyJobsRepository(database.db).projectJobs(p.project.id)).toEqual([]);
      } finally {
        second.services.alarms.scheduler.stop();
        await second.close();
      }
    } finally {
      await hook.close();
    }
  });
});

describe('no DNS rebinding within a delivery', () => {
  it('connects to the address it checked, not to what a second resolution would answer', async () => {
    // 127.0.0.2 is allowed, 127.0.0.1 is not; both listen on the same port.
    const good = await receiver('127.0.0.2');
    let secret: Receiver | undefined;
    let lookups = 0;
    const flipping = async (host: string): Promise<LookupAddress[]> => {
      if (host !== 'flip.example.com') return resolve(host);
      lookups++;
      // The creation check and the delivery check see the allowed address; any later look-up the forbidden one.
      return [{ address: lookups <= 2 ? '127.0.0.2' : '127.0.0.1', family: 4 }];
    };
    const ctx = await createTestApp(
      {},
      { clock, settings: { alarmNotify: { timeoutMs: 1_000, allowNetworks: '127.0.0.2/32', resolve: flipping } } },
    );
    try {
      secret = await receiver('127.0.0.1', good.port);
      const { p, identity } = await alarmSetup(ctx, [`http://flip.example.com:${good.port}/pinned`]);
      await ctx.services.currentValues.report(identity, { temp: 35 });
      await step(ctx);
      expect(secret.received).toEqual([]);
      expect(good.received.map((r) => r.path)).toEqual(['/pinned']);
      expect(lookups).toBe(2);
      const [log] = expectOk(await p.api.get('/api/v1/alarm_logs')).items;
      expect(log.notify_logs[0]).toMatchObject({ status: 'delivered' });
    } finally {
      await ctx.close();
      await good.close();
      await secret?.close();
    }
  });
});
