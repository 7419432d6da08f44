import { sql } from 'drizzle-orm';
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
  projectId: string;
}

async function newDevice(f: ProjectFixture = p, body: Record<string, unknown> = {}): Promise<TestDevice> {
  return { ...(await addDeviceWithToken(f, { name: 'dev', ...body })), projectId: f.project.id };
}

/** "Connects" a device the way the broker will: a session in the registry that records what is sent. */
function connect(d: TestDevice, transport: Transport = 'mqtt') {
  return attachSession(ctx.services, { deviceId: d.id, projectId: d.projectId }, { transport });
}

const capture = <K extends keyof DomainEvents>(name: K) => captureEvents(ctx.services, name);

async function storedValues(deviceId: string) {
  // Fresh reports' current values are written once per second: write them now.
  await ctx.services.currentCache.flush();
  return rowsOf<{ identifier: string; value: unknown; attr_type: string; data_type: string }>(
    await ctx.database.db.execute(
      sql`select identifier, value, attr_type, data_type from attribute_values where device_id = ${deviceId} order by identifier`,
    ),
  );
}

/** Device reads as the device protocol does it (device-protocol.md §5). */
async function deviceReads(d: TestDevice) {
  const res = await ctx.app.inject({
    method: 'GET',
    url: `/device/v1/${d.token}/attributes`,
    headers: { 'project-key': p.project.project_key },
  });
  return res.json();
}

const attrs = (id: string) => `/api/v1/control/device/${id}/attributes`;
const dataSet = (id: string, identifier = 'stream', query = '') =>
  `/api/v1/control/device/${id}/data/${identifier}/set${query}`;

describe('POST /api/v1/control/device/:id/attributes (push)', () => {
  it('publishes on attributes/push and records the values as pushed', async () => {
    const d = await newDevice();
    const link = connect(d);
    const events = capture('device.attributes');
    expect(expectOk(await p.api.post(attrs(d.id), { relay: false, speed: 2.5, cfg: { mode: 'auto' } }))).toEqual({});
    events.off();
    link.disconnect();
    expect(link.sent).toHaveLength(1);
    expect(link.sent[0]!.topic).toBe('attributes/push');
    expect(JSON.parse(link.sent[0]!.payload.toString())).toEqual({ relay: false, speed: 2.5, cfg: { mode: 'auto' } });
    expect(await storedValues(d.id)).toEqual([
      { identifier: 'cfg', value: { mode: 'auto' }, attr_type: 'push', data_type: 'object' },
      { identifier: 'relay', value: false, attr_type: 'push', data_type: 'boolean' },
      { identifier: 'speed', value: 2.5, attr_type: 'push', data_type: 'number' },
    ]);
    expect(events.seen).toEqual([
      {
        projectId: p.project.id,
        deviceId: d.id,
        attributes: { relay: false, speed: 2.5, cfg: { mode: 'auto' } },
        attrType: 'push',
        ts: expect.any(Number),
      },
    ]);
    expect(await deviceReads(d)).toEqual({
      result: 1,
      attributes: { cfg: { mode: 'auto' }, relay: false, speed: 2.5 },
    });
  });

  it('answers 422 for an offline device and records nothing', async () => {
    const d = await newDevice();
    expect(expectFailure(await p.api.post(attrs(d.id), { relay: true }), 422).message).toBe('Device is offline');
    expect(await storedValues(d.id)).toEqual([]);
  });

  it('refuses invalid attributes with field errors before anything is sent', async () => {
    const d = await newDevice();
    const link = connect(d);
    const body = expectFailure(await p.api.post(attrs(d.id), { good: 1, 'bad key': 2, empty: null }), 400);
    expect(body.errors).toEqual([
      { path: 'bad key', message: expect.stringMatching(/identifier/) },
      { path: 'empty', message: expect.stringMatching(/value/) },
    ]);
    expectFailure(await p.api.post(attrs(d.id), {}), 400);
    expectFailure(await p.api.post(attrs(d.id), [{ a: 1 }]), 400);
    link.disconnect();
    expect(link.sent).toEqual([]);
  });
});

describe('PUT /api/v1/control/device/:id/attributes (cloud attributes)', () => {
  it('stores cloud attributes for an offline device; the device and the application read them', async () => {
    const d = await newDevice();
    const events = capture('device.attributes');
    expect(expectOk(await p.api.put(attrs(d.id), { target: 22, schedule: [8, 18] }))).toEqual({});
    events.off();
    expect(await storedValues(d.id)).toEqual([
      { identifier: 'schedule', value: [8, 18], attr_type: 'cloud', data_type: 'array' },
      { identifier: 'target', value: 22, attr_type: 'cloud', data_type: 'number' },
    ]);
    expect(events.seen.map((e) => e.attrType)).toEqual(['cloud']);
    expect(await deviceReads(d)).toEqual({ result: 1, attributes: { schedule: [8, 18], target: 22 } });
    const app = await ctx.app.inject({
      method: 'GET',
      url: `/app/device/v1/${d.token}/attributes`,
      headers: { 'project-key': p.project.project_key },
    });
    expect(app.json()).toEqual({ result: true, info: { attributes: { schedule: [8, 18], target: 22 } } });
  });

  it('sends nothing to an online device', async () => {
    const d = await newDevice();
    const link = connect(d);
    expectOk(await p.admin.put(attrs(d.id), { target: 1 }));
    link.disconnect();
    expect(link.sent).toEqual([]);
  });
});

describe('POST /api/v1/control/device/:id/data/:identifier/set', () => {
  it('converts hex (spaces allowed) to the exact bytes on data/<identifier>/set', async () => {
    const d = await newDevice();
    const link = connect(d);
    expect(expectOk(await p.api.post(dataSet(d.id), { type: 'hex', msg: '01 03 01 FF 00 0C 74 03' }))).toEqual({});
    expectOk(await p.api.post(dataSet(d.id, 'modbus-1', '?push_mode=mqtt'), { type: 'hex', msg: 'a0b1' }));
    link.disconnect();
    expect(link.sent.map((m) => m.topic)).toEqual(['data/stream/set', 'data/modbus-1/set']);
    expect([...link.sent[0]!.payload]).toEqual([0x01, 0x03, 0x01, 0xff, 0x00, 0x0c, 0x74, 0x03]);
    expect([...link.sent[1]!.payload]).toEqual([0xa0, 0xb1]);
  });

  it('sends text as UTF-8 and json serialized, and accepts `message` for `msg`', async () => {
    const d = await newDevice();
    const link = connect(d);
    expectOk(await p.api.post(dataSet(d.id), { type: 'text', msg: 't:45,u=31' }));
    expectOk(await p.api.post(dataSet(d.id), { type: 'text', message: '温度 ok' }));
    const command = { command: 'openLock', led: 'ON', stat: '011001' };
    expectOk(await p.api.post(dataSet(d.id), { type: 'json', msg: command }));
    expectOk(await p.api.post(dataSet(d.id), { type: 'json', message: [1, 'a'] }));
    link.disconnect();
    expect(link.sent.map((m) => m.payload)).toEqual([
      Buffer.from('t:45,u=31', 'utf8'),
      Buffer.from([0xe6, 0xb8, 0xa9, 0xe5, 0xba, 0xa6, 0x20, 0x6f, 0x6b]),
      Buffer.from('{"command":"openLock","led":"ON","stat":"011001"}'),
      Buffer.from('[1,"a"]'),
    ]);
  });

  it('writes the bytes to a TCP link with push_mode=tcp', async () => {
    const d = await newDevice();
    const link = connect(d, 'tcp');
    expectOk(await p.api.post(dataSet(d.id, 'stream', '?push_mode=tcp'), { type: 'hex', msg: '0102' }));
    link.disconnect();
    expect(link.sent.map((m) => [m.topic, m.payload.toString('hex')])).toEqual([['', '0102']]);
  });

  it('answers 422 when push_mode does not match the live connection or the device is offline', async () => {
    const d = await newDevice();
    expect(expectFailure(await p.api.post(dataSet(d.id), { type: 'text', msg: 'x' }), 422).message).toBe(
      'Device is offline',
    );
    const mqtt = connect(d, 'mqtt');
    expect(
      expectFailure(await p.api.post(dataSet(d.id, 'stream', '?push_mode=tcp'), { type: 'text', msg: 'x' }), 422)
        .message,
    ).toBe('Device is not connected over tcp');
    mqtt.disconnect();
    const tcp = connect(d, 'tcp');
    expect(expectFailure(await p.api.post(dataSet(d.id), { type: 'text', msg: 'x' }), 422).message).toBe(
      'Device is not connected over mqtt',
    );
    tcp.disconnect();
    expect([...mqtt.sent, ...tcp.sent]).toEqual([]);
  });

  it('accepts only the streams of the device type when the type defines any', async () => {
    const withStreams = expectOk(await p.api.post('/api/v1/device_type', { name: 'meter' }));
    expectOk(
      await p.api.post(`/api/v1/device_type/${withStreams.id}/data_stream`, { identifier: 'rs485', format: 'hex' }),
    );
    const bare = expectOk(await p.api.post('/api/v1/device_type', { name: 'bare' }));
    const d = await newDevice(p, { type: withStreams.id });
    const free = await newDevice(p, { type: bare.id });
    const link = connect(d);
    const freeLink = connect(free);
    expect(expectFailure(await p.api.post(dataSet(d.id, 'stream'), { type: 'hex', msg: '00' }), 404).message).toBe(
      'Data stream not found',
    );
    expectOk(await p.api.post(dataSet(d.id, 'rs485'), { type: 'hex', msg: '00' }));
    expectOk(await p.api.post(dataSet(free.id, 'anything_1'), { type: 'hex', msg: '00' }));
    link.disconnect();
    freeLink.disconnect();
    expect(link.sent.map((m) => m.topic)).toEqual(['data/rs485/set']);
    expect(freeLink.sent.map((m) => m.topic)).toEqual(['data/anything_1/set']);
  });

  it('refuses malformed messages, identifiers and modes with 400', async () => {
    const d = await newDevice();
    const link = connect(d);
    for (const body of [
      { type: 'hex', msg: '010' },
      { type: 'hex', msg: '0g' },
      { type: 'hex', msg: '' },
      { type: 'hex', msg: 12 },
      { type: 'text', msg: { a: 1 } },
      { type: 'text', msg: '' },
      { type: 'binary', msg: '00' },
      { type: 'json' },
      { msg: 'x' },
      { type: 'text', msg: 'x'.repeat(64 * 1024 + 1) },
    ]) {
      expectFailure(await p.api.post(dataSet(d.id), body), 400);
    }
    expectFailure(await p.api.post(dataSet(d.id, 'bad.id'), { type: 'text', msg: 'x' }), 400);
    expectFailure(await p.api.post(dataSet(d.id, 'x'.repeat(65)), { type: 'text', msg: 'x' }), 400);
    expectFailure(await p.api.post(dataSet(d.id, 'stream', '?push_mode=ws'), { type: 'text', msg: 'x' }), 400);
    link.disconnect();
    expect(link.sent).toEqual([]);
  });
});

describe('control routes and tenancy', () => {
  it("answers 404 for another project's device, even when it is online, and sends nothing", async () => {
    const other = await createProject(ctx, 'other');
    const foreign = await newDevice(other);
    const link = connect(foreign);
    expectFailure(await p.api.post(attrs(foreign.id), { a: 1 }), 404);
    expectFailure(await p.api.put(attrs(foreign.id), { a: 1 }), 404);
    expectFailure(await p.api.post(dataSet(foreign.id), { type: 'text', msg: 'x' }), 404);
    expectFailure(await p.api.post(attrs('no-such-device'), { a: 1 }), 404);
    expect(link.sent).toEqual([]);
    expect(await storedValues(foreign.id)).toEqual([]);
    // control: the owner's token reaches it
    expectOk(await other.api.post(attrs(foreign.id), { a: 1 }));
    link.disconnect();
    expect(link.sent).toHaveLength(1);
  });

  it('answers 403 to a customer token, even for a device bound to the customer', async () => {
    const d = await newDevice();
    const link = connect(d);
    const customer = expectOk(
      await p.api.post('/api/v1/customer', { name: 'Cy', account: 'cy-control', password: 'password-cy' }),
    );
    expectOk(await p.api.post(`/api/v1/customer/${customer.id}/devices`, { devices: [d.id] }));
    const login = expectOk(
      await client(ctx.app).post('/api/v1/customer_login', {
        app_id: p.project.app.app_id,
        account: 'cy-control',
        password: 'password-cy',
      }),
    );
    const cust = client(ctx.app, login.access_token);
    expectFailure(await cust.post(attrs(d.id), { a: 1 }), 403);
    expectFailure(await cust.put(attrs(d.id), { a: 1 }), 403);
    expectFailure(await cust.post(dataSet(d.id), { type: 'text', msg: 'x' }), 403);
    link.disconnect();
    expect(link.sent).toEqual([]);
    expect(await storedValues(d.id)).toEqual([]);
  });

  it('answers 401 without a token', async () => {
    const d = await newDevice();
    expectFailure(await client(ctx.app).post(attrs(d.id), { a: 1 }), 401);
  });
});
