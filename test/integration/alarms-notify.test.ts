import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeviceIdentity } from '../../src/domain/devices/device-identity.ts';
import type { DomainEvents } from '../../src/domain/events/event-bus.ts';
import { createProject, createTestApp, expectOk, type TestContext } from '../helpers/app.ts';
import { addDevice, addDeviceType, directIdentity } from '../helpers/factories.ts';

let now = 1_700_000_000_000;
const clock = () => now;
let ctx: TestContext;

interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A local webhook receiver on port 0; `answer` decides each response (status, or 'hang'). */
let received: Received[] = [];
let answer: (n: number) => number | 'hang' = () => 200;
let server: http.Server;
let url: string;
const hanging: http.ServerResponse[] = [];

beforeAll(async () => {
  ctx = await createTestApp(
    {},
    {
      clock,
      settings: {
        alarmNotify: { timeoutMs: 300, maxAttempts: 3, backoffMs: 1_000, concurrency: 2, allowNetworks: '127.0.0.0/8' },
      },
    },
  );
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString() });
      const a = answer(received.length);
      if (a === 'hang') hanging.push(res);
      else res.writeHead(a).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
});
afterAll(async () => {
  for (const res of hanging) res.destroy();
  await ctx?.services.alarms.stop();
  await ctx?.close();
  await new Promise((resolve) => server.close(resolve));
});

async function setup(target: Record<string, unknown> = {}) {
  received = [];
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
  const t = expectOk(await p.api.post('/api/v1/notification_target', { name: 'ops', url, ...target }));
  return { p, d, identity, target: t };
}

async function report(identity: DeviceIdentity, attributes: Record<string, unknown>) {
  await ctx.services.currentValues.report(identity, attributes);
  await ctx.services.alarms.idle();
}

describe('webhook notifications', () => {
  it('POSTs each entry as signed JSON and records the delivery in notify_logs', async () => {
    answer = () => 200;
    const { p, d, identity, target } = await setup({ secret: 'a-webhook-secret-of-32-characters' });
    expect(target.secret).toBe('a-webhook-secret-of-32-characters');
    expect(expectOk(await p.api.get(`/api/v1/notification_target/${target.id}`))).not.toHaveProperty('secret');
    const events: Array<DomainEvents['device.alarm']> = [];
    const off = ctx.services.bus.on('device.alarm', (e) => events.push(e));
    await report(identity, { temp: 35 });
    await report(identity, { temp: 20 });
    off();

    expect(received).toHaveLength(2);
    const [first] = received;
    const ts = first!.headers['x-timestamp'] as string;
    const expected = `sha256=${createHmac('sha256', 'a-webhook-secret-of-32-characters').update(`${ts}.${first!.body}`).digest('hex')}`;
    expect(first!.headers['x-signature']).toBe(expected);
    expect(first!.headers['content-type']).toBe('application/json');
    const body = JSON.parse(first!.body);
    expect(body).toMatchObject({
      event: 'alarm',
      project_id: p.project.id,
      alarm: {
        device_id: d.id,
        device: { id: d.id, name: 'boiler' },
        alarm_status: 1,
        alarm_level: 2,
        alarm_info: { value: 35 },
      },
    });
    expect(JSON.parse(received[1]!.body).alarm).toMatchObject({ alarm_status: 0, alarm_info: { reason: 'recovered' } });

    const items = expectOk(await p.api.get('/api/v1/alarm_logs')).items;
    expect(items[1].notify_logs).toEqual([
      { target: target.id, time: now, attempt: 1, status: 'delivered', http_status: 200 },
    ]);
    expect(events.map((e) => [e.deviceId, e.alarm.status, e.alarm.level])).toEqual([
      [d.id, 1, 2],
      [d.id, 0, 2],
    ]);
    expect(events[0]!.alarm.id).toBe(items[1].id);
  });

  it('retries with exponential back-off on 5xx and records every attempt', async () => {
    answer = (n) => (n <= 2 ? 503 : 200);
    const { p, identity, target } = await setup();
    await report(identity, { temp: 35 });
    expect(received).toHaveLength(1);
    const t0 = now;
    now += 999;
    await ctx.services.alarms.scheduler.runDue();
    await ctx.services.alarms.idle();
    expect(received).toHaveLength(1);
    now += 1;
    await ctx.services.alarms.scheduler.runDue();
    await ctx.services.alarms.idle();
    expect(received).toHaveLength(2);
    now += 2_000; // the second retry waits twice as long
    await ctx.services.alarms.scheduler.runDue();
    await ctx.services.alarms.idle();
    expect(received.map((r) => r.headers['x-delivery-attempt'])).toEqual(['1', '2', '3']);
    const [log] = expectOk(await p.api.get('/api/v1/alarm_logs')).items;
    expect(log.notify_logs).toEqual([
      {
        target: target.id,
        time: t0,
        attempt: 1,
        status: 'failed',
        http_status: 503,
        error: 'HTTP 503',
        next_attempt_time: t0 + 1_000,
      },
      {
        target: target.id,
        time: t0 + 1_000,
        attempt: 2,
        status: 'failed',
        http_status: 503,
        error: 'HTTP 503',
        next_attempt_time: t0 + 3_000,
      },
      { target: target.id, time: t0 + 3_000, attempt: 3, status: 'delivered', http_status: 200 },
    ]);
  });

  it('gives up after the last attempt, and does not retry a 4xx answer', async () => {
    answer = () => 500;
    const a = await setup();
    await report(a.identity, { temp: 35 });
    for (let i = 0; i < 4; i++) {
      now += 10_000;
      await ctx.services.alarms.scheduler.runDue();
      await ctx.services.alarms.idle();
    }
    expect(received).toHaveLength(3);
    const [log] = expectOk(await a.p.api.get('/api/v1/alarm_logs')).items;
    expect(log.notify_logs.map((n: { status: string }) => n.status)).toEqual(['failed', 'failed', 'failed']);
    expect(log.notify_logs[2]).not.toHaveProperty('next_attempt_time');

    answer = () => 404;
    const b = await setup();
    await report(b.identity, { temp: 35 });
    now += 60_000;
    await ctx.services.alarms.scheduler.runDue();
    await ctx.services.alarms.idle();
    expect(received).toHaveLength(1);
    const [logB] = expectOk(await b.p.api.get('/api/v1/alarm_logs')).items;
    expect(logB.notify_logs).toMatchObject([{ status: 'failed', http_status: 404, error: 'HTTP 404' }]);
  });

  it('a webhook that does not answer times out without holding up evaluation', async () => {
    answer = () => 'hang';
    const { p, identity } = await setup();
    await ctx.services.currentValues.report(identity, { temp: 35 });
    await ctx.services.alarms.engine.idle();
    // The alarm is recorded and the device state set while the delivery still waits.
    expect(expectOk(await p.api.get('/api/v1/alarm_logs')).items).toHaveLength(1);
    await ctx.services.currentValues.report(identity, { temp: 20 });
    await ctx.services.alarms.engine.idle();
    expect(expectOk(await p.api.get('/api/v1/alarm_logs')).items).toHaveLength(2);
    await ctx.services.alarms.idle();
    const items = expectOk(await p.api.get('/api/v1/alarm_logs')).items;
    expect(items[1].notify_logs[0]).toMatchObject({ status: 'failed', error: 'timeout', attempt: 1 });
  });

  it('skips entries below the target min_level and disabled targets; refuses non-http urls', async () => {
    answer = () => 200;
    const { p, identity, target } = await setup({ min_level: 3 });
    await report(identity, { temp: 35 });
    expect(received).toHaveLength(0);
    expectOk(await p.api.put(`/api/v1/notification_target/${target.id}`, { min_level: 1, enabled: false }));
    await report(identity, { temp: 20 });
    expect(received).toHaveLength(0);
    expectOk(await p.api.put(`/api/v1/notification_target/${target.id}`, { enabled: true }));
    await report(identity, { temp: 36 });
    expect(received).toHaveLength(1);
    const bad = await p.api.post('/api/v1/notification_target', { name: 'x', url: 'file:///etc/passwd' });
    expect(bad.body).toMatchObject({ result: false, errcode: 400 });
    expectOk(await p.api.delete(`/api/v1/notification_target/${target.id}`));
    expect(expectOk(await p.api.get('/api/v1/notification_targets')).items).toEqual([]);
  });
});
