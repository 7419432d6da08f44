import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Transport } from '../../src/domain/delivery/sessions.ts';
import type { DeviceIdentity } from '../../src/domain/devices/device-identity.ts';
import type { DomainEvents } from '../../src/domain/events/event-bus.ts';
import { monotonicIds } from '../../src/domain/telemetry/data-streams.service.ts';
import { DAY_MS } from '../../src/lib/time.ts';
import {
  client,
  createProject,
  createTestApp,
  expectFailure,
  expectOk,
  type ProjectFixture,
  type TestContext,
} from '../helpers/app.ts';
import { addDevice, addDeviceType, attachSession, captureEvents, directIdentity } from '../helpers/factories.ts';

/**
 * Custom data streams through the service and the project API (device-protocol.md §7): what is
 * accepted, recorded, mapped and read back. The transports themselves are in test/protocol.
 */
let ctx: TestContext;
let p: ProjectFixture;
let other: ProjectFixture;

beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx);
  other = await createProject(ctx, 'other tenant');
});
afterAll(() => ctx?.close());

interface Dev {
  id: string;
  identity: DeviceIdentity;
}

async function newType(
  f: ProjectFixture,
  body: Record<string, unknown> = {},
  streams: Array<Record<string, unknown>> = [],
) {
  return (await addDeviceType(f.api, { name: 'meter', ...body }, streams)).id;
}

async function newDevice(f: ProjectFixture = p, type?: string): Promise<Dev> {
  const { id } = await addDevice(f.api, { name: 'dev', type });
  return { id, identity: directIdentity(f.project.id, { id, name: 'dev', type }) };
}

const connect = (d: Dev, transport: Transport = 'mqtt') => attachSession(ctx.services, d.identity, { transport });

const capture = <K extends keyof DomainEvents>(name: K) => captureEvents(ctx.services, name);

const messages = (f: ProjectFixture, id: string, identifier: string, query = '') =>
  f.api.get(`/api/v1/device/${id}/data/${identifier}/messages${query}`);
const up = (
  d: Dev,
  identifier: string | undefined,
  payload: Buffer | string,
  transport: Transport = 'mqtt',
  ts?: number,
) =>
  ctx.services.dataStreams.upstream(
    d.identity,
    transport,
    identifier,
    Buffer.isBuffer(payload) ? payload : Buffer.from(payload),
    ts,
  );

describe('device type raw TCP settings', () => {
  it('stores tcp_heartbeat and tcp_frame_gap_ms on create and update, null clears them', async () => {
    const id = await newType(p, { tcp_heartbeat: 'PING', tcp_frame_gap_ms: 250 });
    expect(expectOk(await p.api.get(`/api/v1/device_type/${id}`))).toMatchObject({
      tcp_heartbeat: 'PING',
      tcp_frame_gap_ms: 250,
    });
    expect(expectOk(await p.api.put(`/api/v1/device_type/${id}`, { tcp_heartbeat: '$HB\r\n' }))).toMatchObject({
      tcp_heartbeat: '$HB\r\n',
      tcp_frame_gap_ms: 250,
    });
    expect(
      expectOk(await p.api.put(`/api/v1/device_type/${id}`, { tcp_heartbeat: null, tcp_frame_gap_ms: null })),
    ).toMatchObject({
      tcp_heartbeat: null,
      tcp_frame_gap_ms: null,
    });
  });

  it('refuses out-of-range values with 400', async () => {
    const id = await newType(p);
    for (const body of [
      { tcp_heartbeat: '' },
      { tcp_heartbeat: 'x'.repeat(65) },
      { tcp_heartbeat: 'a\u0000b' },
      { tcp_frame_gap_ms: 9 },
      { tcp_frame_gap_ms: 10_001 },
      { tcp_frame_gap_ms: 1.5 },
    ]) {
      expectFailure(await p.api.put(`/api/v1/device_type/${id}`, body), 400);
      expectFailure(await p.api.post('/api/v1/device_type', { name: 'x', ...body }), 400);
    }
  });

  it('gives the TCP profile of a device: the bound stream, heartbeat and gap; defaults without them', async () => {
    const bound = await newType(p, { tcp_heartbeat: 'hb', tcp_frame_gap_ms: 40 }, [
      { identifier: 'cfg', format: 'text' },
      { identifier: 'serial', format: 'json', tcp_bound: true, map_to_attributes: true },
    ]);
    const d = await newDevice(p, bound);
    expect(await ctx.services.dataStreams.tcpProfile(d.identity)).toEqual({
      stream: { identifier: 'serial', format: 'json', mapToAttributes: true, defined: true },
      heartbeat: 'hb',
      frameGapMs: 40,
    });
    const bare = await newDevice(p);
    expect(await ctx.services.dataStreams.tcpProfile(bare.identity)).toEqual({
      stream: { identifier: 'stream', format: 'hex', mapToAttributes: false, defined: false },
      heartbeat: null,
      frameGapMs: null,
    });
  });

  it('sees a changed stream definition at once (no stale cache)', async () => {
    const t = await newType(p, {}, [{ identifier: 'a', format: 'hex', tcp_bound: true }]);
    const d = await newDevice(p, t);
    expect((await ctx.services.dataStreams.tcpProfile(d.identity)).stream.identifier).toBe('a');
    expectOk(await p.api.put(`/api/v1/device_type/${t}/data_stream/a`, { tcp_bound: false }));
    expectOk(
      await p.api.post(`/api/v1/device_type/${t}/data_stream`, { identifier: 'b', format: 'text', tcp_bound: true }),
    );
    expect((await ctx.services.dataStreams.tcpProfile(d.identity)).stream).toMatchObject({
      identifier: 'b',
      format: 'text',
    });
    expectOk(await p.api.put(`/api/v1/device_type/${t}`, { tcp_frame_gap_ms: 500 }));
    expect((await ctx.services.dataStreams.tcpProfile(d.identity)).frameGapMs).toBe(500);
  });
});

describe('upstream messages', () => {
  it('records the exact bytes with direction, transport and time, counts activity and announces device.data', async () => {
    const d = await newDevice();
    const events = capture('device.data');
    const bytes = Buffer.from([0x00, 0x01, 0xfe, 0xff, 0x0a]);
    const result = await up(d, 'raw', bytes, 'mqtt', 1_700_000_000_000);
    events.off();
    expect(result).toEqual({ recorded: true, id: expect.any(String), ts: 1_700_000_000_000 });
    expect(events.seen).toEqual([
      {
        projectId: p.project.id,
        deviceId: d.id,
        identifier: 'raw',
        direction: 'up',
        transport: 'mqtt',
        payload: bytes,
        ts: 1_700_000_000_000,
      },
    ]);
    const page = expectOk(await messages(p, d.id, 'raw', '?start_time=1699999999000&end_time=1700000001000'));
    expect(page).toEqual({
      items: [
        {
          id: expect.any(String),
          direction: 'up',
          transport: 'mqtt',
          ts: 1_700_000_000_000,
          size: 5,
          format: 'hex',
          data: '0001feff0a',
          hex: '0001feff0a',
        },
      ],
      total: 1,
      page_total: 1,
    });
    await ctx.services.presence.flush();
    expect(expectOk(await p.api.get(`/api/v1/device/${d.id}`)).active.data).toBe(1_700_000_000_000);
  });

  it('accepts only the streams a type defines (and its TCP stream over TCP); drops and counts the rest', async () => {
    const t = await newType(p, {}, [{ identifier: 'rs485', format: 'text' }]);
    const d = await newDevice(p, t);
    const before = ctx.services.dataStreams.stats().dropped.unknown_stream;
    expect(await up(d, 'other', 'x')).toEqual({ recorded: false, reason: 'unknown_stream' });
    // `stream` is the implicit TCP stream of a type that binds none: refused over MQTT, accepted over TCP.
    expect(await up(d, 'stream', 'x')).toEqual({ recorded: false, reason: 'unknown_stream' });
    expect(ctx.services.dataStreams.stats().dropped.unknown_stream).toBe(before + 2);
    expect(await up(d, 'rs485', 'ok')).toMatchObject({ recorded: true });
    expect(await up(d, undefined, 'via tcp', 'tcp')).toMatchObject({ recorded: true });
    expect(expectOk(await messages(p, d.id, 'other')).items).toEqual([]);
    expect(expectOk(await messages(p, d.id, 'rs485')).items.map((m: { data: string }) => m.data)).toEqual(['ok']);
    expect(expectOk(await messages(p, d.id, 'stream')).items.map((m: { hex: string }) => m.hex)).toEqual([
      Buffer.from('via tcp').toString('hex'),
    ]);
  });

  it('drops empty payloads, oversized ones and non-JSON on a JSON stream', async () => {
    const t = await newType(p, {}, [
      { identifier: 'j', format: 'json' },
      { identifier: 'h', format: 'hex' },
    ]);
    const d = await newDevice(p, t);
    expect(await up(d, 'h', Buffer.alloc(0))).toEqual({ recorded: false, reason: 'empty' });
    expect(await up(d, 'h', Buffer.alloc(64 * 1024 + 1))).toEqual({ recorded: false, reason: 'too_large' });
    expect(await up(d, 'h', Buffer.alloc(64 * 1024))).toMatchObject({ recorded: true });
    expect(await up(d, 'j', '{"a":')).toEqual({ recorded: false, reason: 'not_json' });
    expect(await up(d, 'j', 'ping')).toEqual({ recorded: false, reason: 'not_json' });
    expect(await up(d, 'j', ' [1,"x"] ')).toMatchObject({ recorded: true });
    expect(await up(d, 'j', '42')).toMatchObject({ recorded: true });
    const page = expectOk(await messages(p, d.id, 'j'));
    expect(page.items.map((m: { format: string; data: string }) => [m.format, m.data])).toEqual([
      ['json', '42'],
      ['json', ' [1,"x"] '],
    ]);
  });

  it('maps JSON objects of a mapped stream into attributes; arrays and refused objects stay recorded only', async () => {
    const t = await newType(p, {}, [{ identifier: 'telemetry', format: 'json', map_to_attributes: true }]);
    const d = await newDevice(p, t);
    const attrs = capture('device.attributes');
    await up(d, 'telemetry', '{"temp":21.5,"door":"open"}', 'mqtt', Date.now());
    await up(d, 'telemetry', '[1,2]');
    await up(d, 'telemetry', '{"bad key":1}');
    attrs.off();
    expect(attrs.seen.map((e) => [e.deviceId, e.attributes, e.attrType])).toEqual([
      [d.id, { temp: 21.5, door: 'open' }, 'report'],
    ]);
    expect(await ctx.services.currentValues.get(p.project.id, d.id)).toEqual({ temp: 21.5, door: 'open' });
    expect(expectOk(await messages(p, d.id, 'telemetry')).total).toBe(3);
  });

  it('does not map streams without the flag', async () => {
    const t = await newType(p, {}, [{ identifier: 'plain', format: 'json' }]);
    const d = await newDevice(p, t);
    await up(d, 'plain', '{"temp":1}');
    expect(await ctx.services.currentValues.get(p.project.id, d.id)).toEqual({});
  });
});

describe('downstream pushes are recorded once sent', () => {
  it('records the bytes sent over MQTT and TCP, and nothing when the push fails', async () => {
    const d = await newDevice();
    const events = capture('device.data');
    const link = connect(d);
    expectOk(await p.api.post(`/api/v1/control/device/${d.id}/data/cmd/set`, { type: 'hex', msg: '01 02 ff' }));
    link.disconnect();
    expectFailure(await p.api.post(`/api/v1/control/device/${d.id}/data/cmd/set`, { type: 'hex', msg: '03' }), 422);
    const tcp = connect(d, 'tcp');
    expectOk(
      await p.api.post(`/api/v1/control/device/${d.id}/data/stream/set?push_mode=tcp`, { type: 'text', msg: 'AT+RST' }),
    );
    tcp.disconnect();
    events.off();
    expect(events.seen.map((e) => [e.identifier, e.direction, e.transport, e.payload.toString('hex')])).toEqual([
      ['cmd', 'down', 'mqtt', '0102ff'],
      ['stream', 'down', 'tcp', Buffer.from('AT+RST').toString('hex')],
    ]);
    expect(expectOk(await messages(p, d.id, 'cmd')).items).toEqual([
      {
        id: expect.any(String),
        direction: 'down',
        transport: 'mqtt',
        ts: expect.any(Number),
        size: 3,
        format: 'hex',
        data: '0102ff',
        hex: '0102ff',
      },
    ]);
    expect(
      expectOk(await messages(p, d.id, 'stream')).items.map((m: { direction: string; transport: string }) => [
        m.direction,
        m.transport,
      ]),
    ).toEqual([['down', 'tcp']]);
  });

  it('sends over TCP only the stream the link carries', async () => {
    const t = await newType(p, {}, [
      { identifier: 'serial', format: 'text', tcp_bound: true },
      { identifier: 'aux', format: 'text' },
    ]);
    const d = await newDevice(p, t);
    const tcp = connect(d, 'tcp');
    const refused = expectFailure(
      await p.api.post(`/api/v1/control/device/${d.id}/data/aux/set?push_mode=tcp`, { type: 'text', msg: 'x' }),
      400,
    );
    expect(refused.message).toMatch(/"serial"/);
    expectFailure(
      await p.api.post(`/api/v1/control/device/${d.id}/data/stream/set?push_mode=tcp`, { type: 'text', msg: 'x' }),
      404,
    );
    expectOk(
      await p.api.post(`/api/v1/control/device/${d.id}/data/serial/set?push_mode=tcp`, { type: 'text', msg: 'ok' }),
    );
    tcp.disconnect();
    expect(tcp.sent.map((m) => m.payload.toString())).toEqual(['ok']);
  });
});

describe('GET /api/v1/device/:id/data/:identifier/messages', () => {
  it('pages newest first, keeping the order of messages within one millisecond', async () => {
    const d = await newDevice();
    const ts = Date.now();
    for (let i = 0; i < 25; i++) await up(d, 'seq', Buffer.from([i]), 'tcp', ts);
    const first = expectOk(await messages(p, d.id, 'seq', '?page_records=10'));
    expect(first.total).toBe(25);
    expect(first.page_total).toBe(3);
    expect(first.items.map((m: { hex: string }) => parseInt(m.hex, 16))).toEqual([
      24, 23, 22, 21, 20, 19, 18, 17, 16, 15,
    ]);
    const last = expectOk(await messages(p, d.id, 'seq', '?page_records=10&page=3'));
    expect(last.items.map((m: { hex: string }) => parseInt(m.hex, 16))).toEqual([4, 3, 2, 1, 0]);
    expect(expectOk(await messages(p, d.id, 'seq', '?page_records=10&page=4')).items).toEqual([]);
  });

  it('shows text and json streams as text, with the exact bytes in hex', async () => {
    const t = await newType(p, {}, [{ identifier: 'log', format: 'text' }]);
    const d = await newDevice(p, t);
    await up(d, 'log', Buffer.from('温度 ok\r\n'));
    await up(d, 'log', Buffer.from([0xff, 0x41]));
    const items = expectOk(await messages(p, d.id, 'log')).items;
    expect(items.map((m: { data: string; hex: string; size: number }) => [m.data, m.hex, m.size])).toEqual([
      ['\ufffdA', 'ff41', 2],
      ['温度 ok\r\n', Buffer.from('温度 ok\r\n').toString('hex'), 11],
    ]);
  });

  it('filters by time: a range, the 30 days before end_time, fractional times floored', async () => {
    const d = await newDevice();
    const day = DAY_MS;
    const now = Date.now();
    for (const ts of [now - 40 * day, now - 10 * day, now - 2 * day, now - 1000])
      await up(d, 's', Buffer.from(String(ts)), 'mqtt', ts);
    const tsOf = (page: { items: Array<{ ts: number }> }) => page.items.map((m) => m.ts);
    expect(tsOf(expectOk(await messages(p, d.id, 's')))).toEqual([now - 1000, now - 2 * day, now - 10 * day]);
    expect(tsOf(expectOk(await messages(p, d.id, 's', `?start_time=${now - 11 * day}&end_time=${now - day}`)))).toEqual(
      [now - 2 * day, now - 10 * day],
    );
    expect(tsOf(expectOk(await messages(p, d.id, 's', `?end_time=${now - 5 * day}`)))).toEqual([now - 10 * day]);
    expect(
      tsOf(
        expectOk(await messages(p, d.id, 's', `?start_time=${now - 2 * day - 0.5}&end_time=${now - 2 * day + 0.9}`)),
      ),
    ).toEqual([now - 2 * day]);
    expectFailure(await messages(p, d.id, 's', `?start_time=${now - 40 * day}&end_time=${now}`), 400);
    expectFailure(await messages(p, d.id, 's', `?start_time=${now}&end_time=${now - 1}`), 400);
    for (const q of ['?page=0', '?page_records=101', '?start_time=abc', '?end_time=-1'])
      expectFailure(await messages(p, d.id, 's', q), 400);
    expectFailure(await messages(p, d.id, 'bad.identifier'), 400);
  });

  it("answers 404 for another project's device and shows its messages to nobody else", async () => {
    const theirs = await newDevice(other);
    await up(theirs, 'stream', 'secret', 'tcp');
    expectFailure(await messages(p, theirs.id, 'stream'), 404);
    expectFailure(await messages(p, 'no-such-device', 'stream'), 404);
    expect(expectOk(await messages(other, theirs.id, 'stream')).total).toBe(1);
  });

  it('lets a customer read only the devices bound to them', async () => {
    const mine = await newDevice();
    const notMine = await newDevice();
    const customer = expectOk(
      await p.api.post('/api/v1/customer', { name: 'Ann', account: 'ann-ds', password: 'password-ann' }),
    );
    expectOk(await p.api.post(`/api/v1/customer/${customer.id}/devices`, { devices: [mine.id] }));
    const login = expectOk(
      await client(ctx.app).post('/api/v1/customer_login', {
        app_id: p.project.app.app_id,
        account: 'ann-ds',
        password: 'password-ann',
      }),
    );
    const token = login.access_token as string;
    const res = (id: string) =>
      ctx.app
        .inject({
          method: 'GET',
          url: `/api/v1/device/${id}/data/stream/messages`,
          headers: { authorization: `Bearer ${token}` },
        })
        .then((r) => r.json());
    expect((await res(mine.id)).result).toBe(true);
    expect(await res(notMine.id)).toMatchObject({ result: false, errcode: 404 });
  });
});

describe('message ids', () => {
  it('start with the message time and increase within one millisecond, whatever comes between', () => {
    const next = monotonicIds();
    const a = [next(1000), next(1000)];
    const between = [next(999), next(1001)];
    const b = [next(1000), next(999)];
    expect(a[0]! < a[1]! && a[1]! < b[0]!).toBe(true);
    expect(between[0]! < b[1]!).toBe(true);
    expect(new Set([...a, ...between, ...b]).size).toBe(6);
    const msOf = (id: string) => parseInt(id.slice(0, 12), 16);
    expect([...a, ...between, ...b].map(msOf)).toEqual([1000, 1000, 999, 1001, 1000, 999]);
    expect([...a, ...b].every((id) => /^[0-9a-f]{24}$/.test(id))).toBe(true);
  });
});
