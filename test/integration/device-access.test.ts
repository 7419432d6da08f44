import { sql } from 'drizzle-orm';
import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowsOf } from '../../src/db/client.ts';
import type { Transport } from '../../src/domain/delivery/sessions.ts';
import type { DomainEvents } from '../../src/domain/events/event-bus.ts';
import {
  client,
  createProject,
  createTestApp,
  expectFailure,
  expectOk,
  type ApiResponse,
  type ProjectFixture,
  type TestContext,
} from '../helpers/app.ts';
import { addDeviceWithToken, attachSession, captureEvents } from '../helpers/factories.ts';

let ctx: TestContext;
let p: ProjectFixture;

beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx);
});
afterAll(() => ctx?.close());

interface TestDevice {
  id: string;
  token: string;
}

async function newDevice(f: ProjectFixture = p, body: Record<string, unknown> = {}): Promise<TestDevice> {
  return addDeviceWithToken(f, { name: 'dev', ...body });
}

/** A request as a device or an application sends it: `Project-Key` header, no bearer token. */
async function call(
  method: InjectOptions['method'],
  url: string,
  payload?: unknown,
  projectKey: string | null = p.project.project_key,
): Promise<ApiResponse> {
  const res = await ctx.app.inject({
    method,
    url,
    headers: {
      ...(projectKey !== null ? { 'project-key': projectKey } : {}),
      ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(payload !== undefined ? { payload: typeof payload === 'string' ? payload : JSON.stringify(payload) } : {}),
  });
  return { status: res.statusCode, body: res.json(), headers: res.headers };
}

/** "Connects" a device the way the broker will: a session in the registry that records what is sent. */
function connect(d: TestDevice, transport: Transport = 'mqtt', projectId = p.project.id) {
  return attachSession(ctx.services, { deviceId: d.id, projectId }, { transport });
}

const capture = <K extends keyof DomainEvents>(name: K) => captureEvents(ctx.services, name);

async function storedValues(deviceId: string) {
  // Fresh reports' current values are written once per second: write them now.
  await ctx.services.currentCache.flush();
  const rows = rowsOf<{
    identifier: string;
    value: unknown;
    attr_type: string;
    data_type: string;
    ts: number | string;
  }>(
    await ctx.database.db.execute(
      sql`select identifier, value, attr_type, data_type, ts from attribute_values where device_id = ${deviceId} order by identifier`,
    ),
  );
  return rows.map((r) => ({ ...r, ts: Number(r.ts) }));
}

/** Asserts the device-protocol failure shape exactly. */
function expectDeviceFailure(res: ApiResponse, errcode: number, status = errcode === 401 ? 401 : 200) {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body).toEqual({ result: 0, errcode, message: expect.any(String) });
  return res.body as { message: string };
}

describe('device reports attributes over HTTP', () => {
  it('stores every value type as the current value and answers {"result":1,"ts"}', async () => {
    const d = await newDevice();
    const events = capture('device.attributes');
    const before = Date.now();
    const attributes = {
      temperature: 21.5,
      on: true,
      mode: 'eco',
      config: { a: 1, b: [1, 2] },
      list: [1, 'two', null],
      _raw: -3,
    };
    const res = await call('POST', `/device/v1/${d.token}/attributes`, attributes);
    events.off();
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ result: 1, ts: expect.any(Number) });
    expect(res.body.ts).toBeGreaterThanOrEqual(before);
    expect(res.body.ts).toBeLessThanOrEqual(Date.now());
    const ts = res.body.ts as number;
    expect(await storedValues(d.id)).toEqual([
      { identifier: '_raw', value: -3, attr_type: 'report', data_type: 'number', ts },
      { identifier: 'config', value: { a: 1, b: [1, 2] }, attr_type: 'report', data_type: 'object', ts },
      { identifier: 'list', value: [1, 'two', null], attr_type: 'report', data_type: 'array', ts },
      { identifier: 'mode', value: 'eco', attr_type: 'report', data_type: 'string', ts },
      { identifier: 'on', value: true, attr_type: 'report', data_type: 'boolean', ts },
      { identifier: 'temperature', value: 21.5, attr_type: 'report', data_type: 'number', ts },
    ]);
    expect(events.seen).toEqual([{ projectId: p.project.id, deviceId: d.id, attributes, attrType: 'report', ts }]);
  });

  it('reads the current attributes back, all or only the asked keys', async () => {
    const d = await newDevice();
    expect((await call('POST', `/device/v1/${d.token}/attributes`, { a: 1, b: 'x', c: false })).body.result).toBe(1);
    expect((await call('POST', `/device/v1/${d.token}/attributes`, { a: 2 })).body.result).toBe(1);
    expect((await call('GET', `/device/v1/${d.token}/attributes`)).body).toEqual({
      result: 1,
      attributes: { a: 2, b: 'x', c: false },
    });
    const some = await call('GET', `/device/v1/${d.token}/attributes?keys=a,c,missing`);
    expect(some.status).toBe(200);
    expect(some.body).toEqual({ result: 1, attributes: { a: 2, c: false } });
    expect((await call('GET', `/device/v1/${d.token}/attributes?keys=`)).body).toEqual({
      result: 1,
      attributes: { a: 2, b: 'x', c: false },
    });
    const fresh = await newDevice();
    expect((await call('GET', `/device/v1/${fresh.token}/attributes`)).body).toEqual({ result: 1, attributes: {} });
    expectDeviceFailure(await call('GET', `/device/v1/${d.token}/attributes?keys=a,9bad`), 400);
  });

  it('keeps the newest value when an older report arrives later', async () => {
    const d = await newDevice();
    const identity = (await ctx.services.deviceAuth.authenticate(p.project.project_key, d.token))!;
    const now = Date.now();
    await ctx.services.currentValues.report(identity, { level: 2, other: 'new' }, now);
    await ctx.services.currentValues.report(identity, { level: 1, other: 'old', more: 7 }, now - 60_000);
    expect(await ctx.services.currentValues.get(p.project.id, d.id)).toEqual({ level: 2, other: 'new', more: 7 });
  });

  it('marks activity but does not make the device online', async () => {
    const d = await newDevice();
    const { ts } = (await call('POST', `/device/v1/${d.token}/attributes`, { x: 1 })).body;
    await ctx.services.presence.flush();
    const read = expectOk(await p.api.get(`/api/v1/device/${d.id}`));
    expect(read.online).toBe(false);
    expect(read.active).toEqual({ attributes: ts });
    expect(expectOk(await p.api.get('/api/v1/devices_stat')).online_device_total).toBe(0);
  });
});

describe('device reports events over HTTP', () => {
  it('logs the event, publishes it, marks activity and answers {"result":1}', async () => {
    const d = await newDevice();
    const events = capture('device.event');
    const res = await call('POST', `/device/v1/${d.token}/event/report`, {
      method: 'door_opened',
      params: { by: 'card', n: 3 },
    });
    events.off();
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ result: 1 });
    const rows = rowsOf<{ method: string; params: unknown; project_id: string; ts: string | number }>(
      await ctx.database.db.execute(
        sql`select method, params, project_id, ts from device_events where device_id = ${d.id}`,
      ),
    );
    expect(rows).toEqual([
      { method: 'door_opened', params: { by: 'card', n: 3 }, project_id: p.project.id, ts: expect.anything() },
    ]);
    const ts = Number(rows[0]!.ts);
    expect(events.seen).toEqual([
      { projectId: p.project.id, deviceId: d.id, method: 'door_opened', params: { by: 'card', n: 3 }, ts },
    ]);
    await ctx.services.presence.flush();
    expect(expectOk(await p.api.get(`/api/v1/device/${d.id}`)).active).toEqual({ event: ts });
    // events are not attributes
    expect((await call('GET', `/device/v1/${d.token}/attributes`)).body.attributes).toEqual({});
  });

  it('takes a missing params as {} and refuses a bad method or params', async () => {
    const d = await newDevice();
    expect((await call('POST', `/device/v1/${d.token}/event/report`, { method: 'ping' })).body).toEqual({ result: 1 });
    const rows = rowsOf<{ params: unknown }>(
      await ctx.database.db.execute(sql`select params from device_events where device_id = ${d.id}`),
    );
    expect(rows).toEqual([{ params: {} }]);
    expectDeviceFailure(await call('POST', `/device/v1/${d.token}/event/report`, { method: '', params: {} }), 400);
    expectDeviceFailure(await call('POST', `/device/v1/${d.token}/event/report`, { method: 'm'.repeat(65) }), 400);
    expectDeviceFailure(await call('POST', `/device/v1/${d.token}/event/report`, { method: 'x', params: [1, 2] }), 400);
    expectDeviceFailure(await call('POST', `/device/v1/${d.token}/event/report`, { params: {} }), 400);
    expectDeviceFailure(
      await call('POST', `/device/v1/${d.token}/event/report`, { method: 'x', params: { big: 'y'.repeat(17 * 1024) } }),
      400,
    );
  });
});

describe('device-protocol failures', () => {
  it('answers bad credentials with 401 {"result":0,"errcode":401,"message"}', async () => {
    const d = await newDevice();
    const other = await createProject(ctx, 'other');
    for (const res of [
      await call('POST', `/device/v1/${d.token}x/attributes`, { a: 1 }),
      await call('POST', `/device/v1/${d.token}/attributes`, { a: 1 }, null),
      await call('POST', `/device/v1/${d.token}/attributes`, { a: 1 }, other.project.project_key),
      await call('GET', `/device/v1/nope/attributes`),
      await call('POST', `/device/v1/nope/event/report`, { method: 'x' }),
    ]) {
      expectDeviceFailure(res, 401);
    }
    expect(await storedValues(d.id)).toEqual([]);
  });

  it('refuses a disabled device with errcode 403', async () => {
    const d = await newDevice();
    await ctx.database.db.execute(sql`update devices set disabled = true where id = ${d.id}`);
    expect(expectDeviceFailure(await call('POST', `/device/v1/${d.token}/attributes`, { a: 1 }), 403).message).toMatch(
      /disabled/,
    );
  });

  it('answers invalid JSON with HTTP 200 and errcode 400', async () => {
    const d = await newDevice();
    for (const payload of ['{"a":', 'not json', '{"a":1}}']) {
      const res = await call('POST', `/device/v1/${d.token}/attributes`, payload);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ result: 0, errcode: 400, message: 'Invalid JSON message' });
    }
  });

  it('refuses invalid attribute messages with errcode 400 and stores nothing', async () => {
    const d = await newDevice();
    const url = `/device/v1/${d.token}/attributes`;
    const many = Object.fromEntries(Array.from({ length: 201 }, (_, i) => [`k${i}`, i]));
    const bulky = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`k${i}`, 'x'.repeat(15 * 1024)]));
    const cases: Array<[unknown, RegExp]> = [
      [[1, 2], /./],
      [{}, /at least one/],
      [{ '1abc': 1 }, /1abc/],
      [{ 'a-b': 1 }, /a-b/],
      [{ ['k'.repeat(65)]: 1 }, /identifier/],
      [{ ok: 1, nothing: null }, /nothing/],
      [many, /200/],
      [{ big: 'x'.repeat(16 * 1024 + 1) }, /big/],
      [bulky, /65536|in all/],
    ];
    for (const [body, message] of cases) {
      const res = await call('POST', url, body);
      expect(expectDeviceFailure(res, 400).message, JSON.stringify(body).slice(0, 80)).toMatch(message);
    }
    // Infinity cannot be written in JSON, but 1e999 parses to it
    expect(expectDeviceFailure(await call('POST', url, '{"x":1e999}'), 400).message).toMatch(/x/);
    expectDeviceFailure(await call('POST', url, '{"s":"a\\u0000b"}'), 400);
    expectDeviceFailure(await call('POST', url, ''), 400);
    expect(await storedValues(d.id)).toEqual([]);
  });

  it('leaves unknown routes at 404 {"message":"Request invalid"}', async () => {
    const d = await newDevice();
    for (const url of [`/device/v1/${d.token}/nope`, '/device/v2/certificate']) {
      const res = await call('POST', url, {});
      expect(res.status).toBe(404);
      expect(res.body).toEqual({ message: 'Request invalid' });
    }
  });
});

describe('application-side calls keyed by the device token', () => {
  it('pushes attributes to an online device and records them as pushed values', async () => {
    const d = await newDevice();
    const url = `/app/device/v1/${d.token}/attributes`;
    expect(expectFailure(await call('POST', url, { relay: true }), 422).message).toBe('Device is offline');
    const link = connect(d);
    const events = capture('device.attributes');
    expect(expectOk(await call('POST', url, { relay: true, level: 3 }))).toEqual({});
    events.off();
    link.disconnect();
    expect(link.sent.map((m) => [m.topic, m.payload.toString()])).toEqual([
      ['attributes/push', '{"relay":true,"level":3}'],
    ]);
    expect((await storedValues(d.id)).map((r) => [r.identifier, r.value, r.attr_type, r.data_type])).toEqual([
      ['level', 3, 'push', 'number'],
      ['relay', true, 'push', 'boolean'],
    ]);
    expect(events.seen).toEqual([
      {
        projectId: p.project.id,
        deviceId: d.id,
        attributes: { relay: true, level: 3 },
        attrType: 'push',
        ts: expect.any(Number),
      },
    ]);
    expect(expectOk(await call('GET', url))).toEqual({ attributes: { level: 3, relay: true } });
  });

  it('stores cloud attributes for an offline device, readable by the device and the application', async () => {
    const d = await newDevice();
    expect((await call('POST', `/device/v1/${d.token}/attributes`, { temp: 20 })).body.result).toBe(1);
    expect(
      expectOk(await call('PUT', `/app/device/v1/${d.token}/attributes`, { threshold: 30, label: 'lab' })),
    ).toEqual({});
    expect((await storedValues(d.id)).map((r) => [r.identifier, r.attr_type])).toEqual([
      ['label', 'cloud'],
      ['temp', 'report'],
      ['threshold', 'cloud'],
    ]);
    expect((await call('GET', `/device/v1/${d.token}/attributes`)).body).toEqual({
      result: 1,
      attributes: { label: 'lab', temp: 20, threshold: 30 },
    });
    expect(expectOk(await call('GET', `/app/device/v1/${d.token}/attributes?keys=threshold`))).toEqual({
      attributes: { threshold: 30 },
    });
  });

  it('sends custom data to the stream of an online device', async () => {
    const d = await newDevice();
    const link = connect(d);
    expectOk(
      await call('POST', `/app/device/v1/${d.token}/data/stream/set`, { type: 'hex', msg: '01 03 01 FF 00 0C 74 03' }),
    );
    expectOk(
      await call('POST', `/app/device/v1/${d.token}/data/cmd/set?push_mode=mqtt`, { type: 'text', message: 'on' }),
    );
    expect(
      expectFailure(
        await call('POST', `/app/device/v1/${d.token}/data/stream/set?push_mode=tcp`, { type: 'text', msg: 'x' }),
        422,
      ).message,
    ).toBe('Device is not connected over tcp');
    link.disconnect();
    expect(link.sent.map((m) => [m.topic, m.payload.toString('hex')])).toEqual([
      ['data/stream/set', '010301ff000c7403'],
      ['data/cmd/set', Buffer.from('on').toString('hex')],
    ]);
    expectFailure(await call('POST', `/app/device/v1/${d.token}/data/stream/set`, { type: 'text', msg: 'x' }), 422);
  });

  it('answers the project envelope: 401 for bad credentials, 400 for bad input', async () => {
    const d = await newDevice();
    expectFailure(await call('GET', `/app/device/v1/${d.token}x/attributes`), 401);
    expectFailure(await call('PUT', `/app/device/v1/${d.token}/attributes`, { a: 1 }, null), 401);
    expectFailure(await call('POST', `/app/device/v1/nope/data/stream/set`, { type: 'text', msg: 'x' }), 401);
    const bad = expectFailure(await call('PUT', `/app/device/v1/${d.token}/attributes`, { ok: 1, '9x': 2 }), 400);
    expect(bad.errors).toEqual([{ path: '9x', message: expect.stringMatching(/identifier/) }]);
    expectFailure(await call('PUT', `/app/device/v1/${d.token}/attributes`, [1]), 400);
    expectFailure(await call('POST', `/app/device/v1/${d.token}/data/stream/set`, { type: 'hex', msg: '0' }), 400);
    expect(await storedValues(d.id)).toEqual([]);
    // the bearer-token client is not what these routes use
    expectFailure(await client(ctx.app, p.appToken).get(`/app/device/v1/${d.token}/attributes`), 401);
  });
});
