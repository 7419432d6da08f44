import { and, eq } from 'drizzle-orm';
import type { IClientOptions, MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GATEWAY_TOPICS } from '../../mqtt-broker/protocol/topics.ts';
import { deviceEvents } from '../../src/db/schema/index.ts';
import {
  createProject,
  createTestApp,
  expectFailure,
  expectOk,
  type ProjectFixture,
  type TestContext,
} from '../helpers/app.ts';
import { startTestBroker, type TestBroker } from '../helpers/broker.ts';
import { addDeviceWithToken } from '../helpers/factories.ts';
import { connectDevice, grantedQos, nextOn } from '../helpers/mqtt.ts';
import { until as waitUntil } from '../helpers/wait.ts';

/** Gateways and sub-devices over MQTT (device-protocol.md §8, §11), with real mqtt.js clients. */
let ctx: TestContext;
let tb: TestBroker;
let url: string;
const clients: MqttClient[] = [];

beforeAll(async () => {
  ctx = await createTestApp();
  tb = await startTestBroker(ctx, { rateLimit: 200 });
  url = tb.url;
});

afterAll(async () => {
  for (const c of clients) c.end(true);
  await tb?.close();
  await ctx?.close();
});

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any -- arbitrary JSON

/** Every downstream gateway topic. */
const DOWN = [
  GATEWAY_TOPICS.attributesResponse,
  GATEWAY_TOPICS.attributesGetResponse,
  GATEWAY_TOPICS.attributesPush,
  GATEWAY_TOPICS.eventResponse,
  GATEWAY_TOPICS.commandSend,
  GATEWAY_TOPICS.commandReplyResponse,
  GATEWAY_TOPICS.connectResponse,
  GATEWAY_TOPICS.disconnectResponse,
];

interface Site {
  p: ProjectFixture;
  gatewayType: string;
  subType: string;
}

async function site(name = 'plant'): Promise<Site> {
  const p = await createProject(ctx, name);
  const gatewayType = expectOk(await p.api.post('/api/v1/device_type', { name: 'edge gateway', conn_type: '3' }))
    .id as string;
  const subType = expectOk(await p.api.post('/api/v1/device_type', { name: 'modbus sensor', conn_type: '2' }))
    .id as string;
  expectOk(
    await p.api.post(`/api/v1/device_type/${subType}/attribute`, {
      identifier: 'temp',
      name: 'Temperature',
      data_type: 'number',
    }),
  );
  return { p, gatewayType, subType };
}

const device = (s: Site, name: string, type?: string) => addDeviceWithToken(s.p, { name, type });

/** A gateway with sub-devices attached at the given addresses. */
async function gatewayWith(s: Site, addresses: string[]) {
  const gateway = await device(s, 'gateway', s.gatewayType);
  const subs: Record<string, string> = {};
  for (const address of addresses) {
    const sub = await device(s, `sensor ${address}`, s.subType);
    expectOk(await s.p.api.post(`/api/v1/device/${gateway.id}/sub_devices`, { device: sub.id, address }));
    subs[address] = sub.id;
  }
  return { gateway, subs };
}

async function connect(s: Site, token: string, extra: IClientOptions = {}): Promise<MqttClient> {
  return connectDevice(
    url,
    { token, projectKey: s.p.project.project_key },
    { connectTimeout: 5_000, ...extra },
    clients,
  );
}

const nextMessage = async (c: MqttClient, topic: string): Promise<Json> => JSON.parse(await nextOn(c, topic));

/** Publishes (QoS 1) and waits for the answer on `responseTopic`. */
async function request(c: MqttClient, topic: string, payload: unknown, responseTopic: string): Promise<Json> {
  const answer = nextMessage(c, responseTopic);
  await c.publishAsync(topic, typeof payload === 'string' ? payload : JSON.stringify(payload), { qos: 1 });
  return answer;
}

/** A connected gateway subscribed to every gateway topic, with `gateway/connect` said for each address. */
async function liveGateway(s: Site, token: string, addresses: string[]) {
  const c = await connect(s, token);
  expect(await grantedQos(c, DOWN)).toEqual(DOWN.map(() => 0));
  for (const address of addresses) {
    expect(await request(c, GATEWAY_TOPICS.connect, { device: address }, GATEWAY_TOPICS.connectResponse)).toEqual({
      result: 1,
      device: address,
    });
  }
  return c;
}

const currentValues = async (s: Site, id: string) =>
  Object.fromEntries(
    (expectOk(await s.p.api.get(`/api/v1/device/${id}/attributes`)) as Json[]).map((a) => [a.identifier, a.value]),
  );

const isOnline = (id: string) => ctx.services.sessions.isOnline(id);

const closed = (c: MqttClient) =>
  new Promise<void>((resolve) => (c.connected ? c.once('close', () => resolve()) : resolve()));

const until = (check: () => boolean | Promise<boolean>, what: string) => waitUntil(check, what, { timeout: 2_000 });

describe('a gateway with 3 sub-devices, end to end (device-protocol.md §8)', () => {
  it('connects, reports, reads, raises events, receives pushes and commands, and takes its sub-devices offline with it', async () => {
    const s = await site();
    const { gateway, subs } = await gatewayWith(s, ['1', '2', 'rs485-3']);
    // Attached but not yet announced: the sub-devices are offline.
    const c = await connect(s, gateway.token);
    expect(isOnline(gateway.id)).toBe(true);
    expect(Object.values(subs).some(isOnline)).toBe(false);
    await c.endAsync();

    const g = await liveGateway(s, gateway.token, ['1', '2', 'rs485-3']);
    for (const id of Object.values(subs)) expect(isOnline(id)).toBe(true);
    const listed = expectOk(await s.p.api.get(`/api/v1/device/${gateway.id}/sub_devices`));
    expect(listed.items.map((i: Json) => [i.address, i.online])).toEqual([
      ['1', true],
      ['2', true],
      ['rs485-3', true],
    ]);
    await ctx.services.presence.flush();
    for (const id of Object.values(subs)) expect(expectOk(await s.p.api.get(`/api/v1/device/${id}`)).online).toBe(true);

    // gateway/attributes feeds each sub-device's current values and history.
    const answer = await request(
      g,
      GATEWAY_TOPICS.attributes,
      { '1': { temp: 21.5 }, '2': { temp: 22, mode: 'auto' }, 'rs485-3': { temp: 23.25, relay: true } },
      GATEWAY_TOPICS.attributesResponse,
    );
    expect(answer).toEqual({ result: 1, ts: expect.any(Number) });
    expect(await currentValues(s, subs['1']!)).toEqual({ temp: 21.5 });
    expect(await currentValues(s, subs['2']!)).toEqual({ temp: 22, mode: 'auto' });
    expect(await currentValues(s, subs['rs485-3']!)).toEqual({ temp: 23.25, relay: true });
    expect(await currentValues(s, gateway.id)).toEqual({});
    const series = expectOk(await s.p.api.get(`/api/v1/device/${subs['rs485-3']}/attribute/temp/series`));
    expect(series).toEqual([expect.objectContaining({ ts: answer.ts, value: 23.25 })]);

    // gateway/attributes/get answers reported and cloud attributes of the named sub-device.
    expectOk(await s.p.api.put(`/api/v1/control/device/${subs['2']}/attributes`, { target: 19 }));
    expect(
      await request(g, GATEWAY_TOPICS.attributesGet, { device: '2' }, GATEWAY_TOPICS.attributesGetResponse),
    ).toEqual({
      result: 1,
      device: '2',
      attributes: { temp: 22, mode: 'auto', target: 19 },
    });
    expect(
      await request(
        g,
        GATEWAY_TOPICS.attributesGet,
        { device: '2', keys: ['target'] },
        GATEWAY_TOPICS.attributesGetResponse,
      ),
    ).toEqual({
      result: 1,
      device: '2',
      attributes: { target: 19 },
    });

    // gateway/event/report is logged as the sub-device's event.
    expect(
      await request(
        g,
        GATEWAY_TOPICS.eventReport,
        { device: 'rs485-3', method: 'overheat', params: { level: 2 } },
        GATEWAY_TOPICS.eventResponse,
      ),
    ).toEqual({
      result: 1,
      device: 'rs485-3',
    });
    const events = await ctx.database.db
      .select()
      .from(deviceEvents)
      .where(and(eq(deviceEvents.projectId, s.p.project.id), eq(deviceEvents.deviceId, subs['rs485-3']!)));
    expect(events.map((e) => [e.method, e.params])).toEqual([['overheat', { level: 2 }]]);

    // A push through the API arrives on gateway/attributes/push with the sub-device's address.
    const push = nextMessage(g, GATEWAY_TOPICS.attributesPush);
    expectOk(await s.p.api.post(`/api/v1/control/device/${subs['1']}/attributes`, { relay: false, setpoint: 7 }));
    expect(await push).toEqual({ device: '1', attributes: { relay: false, setpoint: 7 } });
    expect(await currentValues(s, subs['1']!)).toMatchObject({ relay: false, setpoint: 7 });

    // A command through the API arrives on gateway/command/send; the reply lands in the command log.
    const sent = nextMessage(g, GATEWAY_TOPICS.commandSend);
    const command = expectOk(
      await s.p.api.post(`/api/v1/control/device/${subs['2']}/command`, {
        method: 'calibrate',
        params: { offset: 0.5 },
      }),
    );
    expect(command.state).toBe('sent');
    const wire = await sent;
    expect(wire).toEqual({
      device: '2',
      command: { id: command.command_id, method: 'calibrate', params: { offset: 0.5 } },
    });
    const replied = await request(
      g,
      GATEWAY_TOPICS.commandReply,
      { device: '2', command: { id: wire.command.id, method: 'calibrate', params: { done: true } } },
      GATEWAY_TOPICS.commandReplyResponse,
    );
    expect(replied).toEqual({ result: 1, device: '2', id: command.command_id });
    const log = expectOk(await s.p.api.get(`/api/v1/device/${subs['2']}/commands`));
    expect(log.items[0]).toMatchObject({
      id: command.id,
      state: 'replied',
      reply: { method: 'calibrate', params: { done: true } },
    });

    await ctx.services.presence.flush();
    expect(expectOk(await s.p.api.get('/api/v1/devices_stat'))).toMatchObject({
      device_total: 4,
      online_device_total: 4,
      active_device_total: 4,
    });

    // The gateway's connection ends: all its sub-devices go offline.
    const offline: string[] = [];
    const off = ctx.services.bus.on('device.offline', (e) => offline.push(e.deviceId));
    await g.endAsync();
    await until(() => !isOnline(gateway.id), 'the gateway to go offline');
    off();
    for (const id of Object.values(subs)) expect(isOnline(id)).toBe(false);
    expect(offline.sort()).toEqual([gateway.id, ...Object.values(subs)].sort());
    await ctx.services.presence.flush();
    for (const id of Object.values(subs))
      expect(expectOk(await s.p.api.get(`/api/v1/device/${id}`)).online).toBe(false);
    expect(
      expectOk(await s.p.api.get(`/api/v1/device/${gateway.id}/sub_devices`)).items.every(
        (i: Json) => i.online === false,
      ),
    ).toBe(true);
    // Commands and pushes to them now fail as for any offline device.
    expectFailure(await s.p.api.post(`/api/v1/control/device/${subs['1']}/attributes`, { relay: true }), 422);
  });
});

describe('sub-device presence and delivery', () => {
  it('gateway/disconnect takes one sub-device offline; gateway/connect again brings it back', async () => {
    const s = await site();
    const { gateway, subs } = await gatewayWith(s, ['a', 'b']);
    const g = await liveGateway(s, gateway.token, ['a', 'b']);
    expect(await request(g, GATEWAY_TOPICS.disconnect, { device: 'a' }, GATEWAY_TOPICS.disconnectResponse)).toEqual({
      result: 1,
      device: 'a',
    });
    expect(isOnline(subs.a!)).toBe(false);
    expect(isOnline(subs.b!)).toBe(true);
    expectFailure(await s.p.api.post(`/api/v1/control/device/${subs.a}/command`, { method: 'x' }), 422);
    // Saying it twice changes nothing.
    expect(await request(g, GATEWAY_TOPICS.connect, { device: 'b' }, GATEWAY_TOPICS.connectResponse)).toEqual({
      result: 1,
      device: 'b',
    });
    expect(await request(g, GATEWAY_TOPICS.connect, { device: 'a' }, GATEWAY_TOPICS.connectResponse)).toEqual({
      result: 1,
      device: 'a',
    });
    expect(isOnline(subs.a!)).toBe(true);
  });

  it('delivers a command queued with a ttl when the gateway connects the sub-device', async () => {
    const s = await site();
    const { gateway, subs } = await gatewayWith(s, ['7']);
    const queued = expectOk(
      await s.p.api.post(`/api/v1/control/device/${subs['7']}/command`, {
        method: 'open',
        params: { valve: 2 },
        ttl: 600,
      }),
    );
    expect(queued.state).toBe('queued');
    const g = await liveGateway(s, gateway.token, []);
    const sent = nextMessage(g, GATEWAY_TOPICS.commandSend);
    await request(g, GATEWAY_TOPICS.connect, { device: '7' }, GATEWAY_TOPICS.connectResponse);
    expect(await sent).toEqual({
      device: '7',
      command: { id: queued.command_id, method: 'open', params: { valve: 2 } },
    });
    await until(
      async () => expectOk(await s.p.api.get(`/api/v1/device/${subs['7']}/commands`)).items[0].state === 'sent',
      'the command to be sent',
    );
  });

  it('holds commands until the gateway subscribes to gateway/command/send', async () => {
    const s = await site();
    const { gateway, subs } = await gatewayWith(s, ['h']);
    const g = await connect(s, gateway.token);
    await g.subscribeAsync(GATEWAY_TOPICS.connectResponse);
    await request(g, GATEWAY_TOPICS.connect, { device: 'h' }, GATEWAY_TOPICS.connectResponse);
    const command = expectOk(await s.p.api.post(`/api/v1/control/device/${subs.h}/command`, { method: 'late' }));
    const sent = nextMessage(g, GATEWAY_TOPICS.commandSend);
    await g.subscribeAsync(GATEWAY_TOPICS.commandSend);
    expect(await sent).toEqual({ device: 'h', command: { id: command.command_id, method: 'late', params: {} } });
  });

  it('stops delivering a gateway topic after UNSUBSCRIBE', async () => {
    const s = await site();
    const { gateway, subs } = await gatewayWith(s, ['u']);
    const g = await liveGateway(s, gateway.token, ['u']);
    const got: Json[] = [];
    g.on('message', (t, payload) => {
      if (t === GATEWAY_TOPICS.attributesPush) got.push(JSON.parse(payload.toString()));
    });
    await g.unsubscribeAsync(GATEWAY_TOPICS.attributesPush);
    expectOk(await s.p.api.post(`/api/v1/control/device/${subs.u}/attributes`, { n: 1 }));
    await g.subscribeAsync(GATEWAY_TOPICS.attributesPush);
    const push = nextMessage(g, GATEWAY_TOPICS.attributesPush);
    expectOk(await s.p.api.post(`/api/v1/control/device/${subs.u}/attributes`, { n: 2 }));
    await push;
    // Same connection, in order: had the first push been delivered, it would have come before.
    expect(got).toEqual([{ device: 'u', attributes: { n: 2 } }]);
  });

  it('refuses a custom data push to a sub-device clearly (no gateway topic carries it)', async () => {
    const s = await site();
    expectOk(await s.p.api.post(`/api/v1/device_type/${s.subType}/data_stream`, { identifier: 'raw', format: 'hex' }));
    const { gateway, subs } = await gatewayWith(s, ['d']);
    await liveGateway(s, gateway.token, ['d']);
    const res = expectFailure(
      await s.p.api.post(`/api/v1/control/device/${subs.d}/data/raw/set?push_mode=mqtt`, { type: 'hex', msg: '0102' }),
      422,
    );
    expect(res.message).toMatch(/sub-device has no custom data streams/);
  });

  it('a newer connection of the gateway takes over; the older one closing does not take the sub-devices offline', async () => {
    const s = await site();
    const { gateway, subs } = await gatewayWith(s, ['n']);
    const first = await liveGateway(s, gateway.token, ['n']);
    const second = await liveGateway(s, gateway.token, ['n']);
    await closed(first);
    // The broker handles the older connection's end after the newer one took over.
    await new Promise((r) => setTimeout(r, 100));
    expect(isOnline(subs.n!)).toBe(true);
    const push = nextMessage(second, GATEWAY_TOPICS.attributesPush);
    expectOk(await s.p.api.post(`/api/v1/control/device/${subs.n}/attributes`, { x: 1 }));
    expect(await push).toEqual({ device: 'n', attributes: { x: 1 } });
  });

  it('detaching an online sub-device through the API takes it offline and its address stops working', async () => {
    const s = await site();
    const { gateway, subs } = await gatewayWith(s, ['x', 'y']);
    const g = await liveGateway(s, gateway.token, ['x', 'y']);
    expect(
      await request(g, GATEWAY_TOPICS.attributes, { x: { temp: 1 } }, GATEWAY_TOPICS.attributesResponse),
    ).toMatchObject({ result: 1 });
    expect(
      expectOk(await s.p.api.post(`/api/v1/device/${gateway.id}/sub_devices_remove`, { devices: [subs.x] })),
    ).toEqual({ detached: [subs.x] });
    expect(isOnline(subs.x!)).toBe(false);
    expect(isOnline(subs.y!)).toBe(true);
    expect(
      await request(g, GATEWAY_TOPICS.attributes, { x: { temp: 2 } }, GATEWAY_TOPICS.attributesResponse),
    ).toMatchObject({ result: 0, errcode: 404 });
    expect(await currentValues(s, subs.x!)).toEqual({ temp: 1 });
  });

  it('deleting an online sub-device ends its session and its address', async () => {
    const s = await site();
    const { gateway, subs } = await gatewayWith(s, ['z']);
    const g = await liveGateway(s, gateway.token, ['z']);
    expectOk(await s.p.api.delete(`/api/v1/device/${subs.z}`));
    expect(isOnline(subs.z!)).toBe(false);
    expect(await request(g, GATEWAY_TOPICS.connect, { device: 'z' }, GATEWAY_TOPICS.connectResponse)).toMatchObject({
      result: 0,
      errcode: 404,
      device: 'z',
    });
  });
});

describe('bad gateway messages', () => {
  it('answers result 0 with a reason and keeps the session', async () => {
    const s = await site();
    const { gateway, subs } = await gatewayWith(s, ['1']);
    const g = await liveGateway(s, gateway.token, ['1']);
    const bad = async (topic: string, payload: unknown, response: string) => request(g, topic, payload, response);
    expect(await bad(GATEWAY_TOPICS.attributes, 'not json', GATEWAY_TOPICS.attributesResponse)).toMatchObject({
      result: 0,
      errcode: 400,
      message: 'payload must be JSON',
    });
    expect(await bad(GATEWAY_TOPICS.attributes, [1], GATEWAY_TOPICS.attributesResponse)).toMatchObject({
      result: 0,
      errcode: 400,
    });
    expect(await bad(GATEWAY_TOPICS.attributes, {}, GATEWAY_TOPICS.attributesResponse)).toMatchObject({
      result: 0,
      errcode: 400,
    });
    expect(
      await bad(GATEWAY_TOPICS.attributes, { '1': { 'bad key': 1 } }, GATEWAY_TOPICS.attributesResponse),
    ).toMatchObject({ result: 0, errcode: 400, message: expect.stringContaining('device 1') });
    expect(
      await bad(GATEWAY_TOPICS.attributes, { 'a/b': { temp: 1 } }, GATEWAY_TOPICS.attributesResponse),
    ).toMatchObject({ result: 0, errcode: 404 });
    expect(await bad(GATEWAY_TOPICS.attributesGet, { keys: [] }, GATEWAY_TOPICS.attributesGetResponse)).toMatchObject({
      result: 0,
      errcode: 400,
    });
    expect(
      await bad(GATEWAY_TOPICS.attributesGet, { device: '1', keys: 'temp' }, GATEWAY_TOPICS.attributesGetResponse),
    ).toMatchObject({ result: 0, errcode: 400, device: '1' });
    expect(
      await bad(GATEWAY_TOPICS.eventReport, { device: '1', params: {} }, GATEWAY_TOPICS.eventResponse),
    ).toMatchObject({ result: 0, errcode: 400, device: '1' });
    expect(await bad(GATEWAY_TOPICS.commandReply, { device: '1' }, GATEWAY_TOPICS.commandReplyResponse)).toMatchObject({
      result: 0,
      errcode: 400,
      device: '1',
    });
    expect(
      await bad(
        GATEWAY_TOPICS.commandReply,
        { device: '1', command: { id: 999, method: 'x' } },
        GATEWAY_TOPICS.commandReplyResponse,
      ),
    ).toMatchObject({
      result: 0,
      errcode: 404,
      device: '1',
    });
    for (const id of [undefined, 'x', 1.5, -1]) {
      expect(
        await bad(
          GATEWAY_TOPICS.commandReply,
          { device: '1', command: { id, method: 'x' } },
          GATEWAY_TOPICS.commandReplyResponse,
        ),
      ).toMatchObject({ result: 0, errcode: 400, device: '1' });
    }
    expect(await bad(GATEWAY_TOPICS.connect, { device: 5 }, GATEWAY_TOPICS.connectResponse)).toMatchObject({
      result: 0,
      errcode: 400,
    });
    expect(g.connected).toBe(true);
    expect(await currentValues(s, subs['1']!)).toEqual({});
  });

  it("refuses a whole report whose values contradict a sub-device's attribute model: nothing of it is stored", async () => {
    const s = await site();
    const { gateway, subs } = await gatewayWith(s, ['1', '2']);
    const g = await liveGateway(s, gateway.token, []);
    const answer = await request(
      g,
      GATEWAY_TOPICS.attributes,
      { '1': { temp: 20 }, '2': { temp: 'warm' } },
      GATEWAY_TOPICS.attributesResponse,
    );
    expect(answer).toMatchObject({ result: 0, errcode: 400, message: expect.stringContaining('2.temp') });
    expect(await currentValues(s, subs['1']!)).toEqual({});
    expect(await currentValues(s, subs['2']!)).toEqual({});
  });
});

describe('a gateway speaks only for its own sub-devices', () => {
  it("refuses an address it does not have — another gateway's included — and stores nothing of the message", async () => {
    const s = await site();
    const mine = await gatewayWith(s, ['1', '2']);
    const other = await gatewayWith(s, ['3']);
    const g = await liveGateway(s, mine.gateway.token, ['1']);
    const answer = await request(
      g,
      GATEWAY_TOPICS.attributes,
      { '1': { temp: 1 }, '3': { temp: 3 } },
      GATEWAY_TOPICS.attributesResponse,
    );
    expect(answer).toMatchObject({ result: 0, errcode: 404, message: expect.stringContaining('"3"') });
    expect(await currentValues(s, mine.subs['1']!)).toEqual({});
    expect(await currentValues(s, other.subs['3']!)).toEqual({});
    for (const [topic, response] of [
      [GATEWAY_TOPICS.connect, GATEWAY_TOPICS.connectResponse],
      [GATEWAY_TOPICS.attributesGet, GATEWAY_TOPICS.attributesGetResponse],
    ] as const) {
      expect(await request(g, topic, { device: '3' }, response)).toMatchObject({
        result: 0,
        errcode: 404,
        device: '3',
      });
    }
    expect(
      await request(g, GATEWAY_TOPICS.eventReport, { device: '3', method: 'spoof' }, GATEWAY_TOPICS.eventResponse),
    ).toMatchObject({ result: 0, errcode: 404 });
    expect(isOnline(other.subs['3']!)).toBe(false);
    // Its own sub-device '2' of the same project works; the other gateway's sub-device was never touched.
    expect(
      await request(g, GATEWAY_TOPICS.attributes, { '2': { temp: 2 } }, GATEWAY_TOPICS.attributesResponse),
    ).toMatchObject({ result: 1 });
    expect(await currentValues(s, mine.subs['2']!)).toEqual({ temp: 2 });
  });

  it("cannot reach another project's device at the same address", async () => {
    const a = await site('tenant A');
    const b = await site('tenant B');
    const ga = await gatewayWith(a, []);
    const gb = await gatewayWith(b, ['1']);
    const g = await liveGateway(a, ga.gateway.token, []);
    expect(
      await request(g, GATEWAY_TOPICS.attributes, { '1': { temp: 9 } }, GATEWAY_TOPICS.attributesResponse),
    ).toMatchObject({ result: 0, errcode: 404 });
    expect(await currentValues(b, gb.subs['1']!)).toEqual({});
  });

  it('ignores gateway topics from a device that is not a gateway, and refuses its subscriptions to them', async () => {
    const s = await site();
    const { gateway, subs } = await gatewayWith(s, ['1']);
    const direct = await device(s, 'plain device');
    const subDevice = await device(s, 'direct sub-device', s.subType);
    for (const token of [direct.token, subDevice.token]) {
      const c = await connect(s, token);
      expect(await grantedQos(c, DOWN)).toEqual(DOWN.map(() => 128));
      await c.publishAsync(GATEWAY_TOPICS.connect, JSON.stringify({ device: '1' }), { qos: 1 });
      await c.publishAsync(GATEWAY_TOPICS.attributes, JSON.stringify({ '1': { temp: 66 } }), { qos: 1 });
      await c.publishAsync(GATEWAY_TOPICS.eventReport, JSON.stringify({ device: '1', method: 'spoof' }), { qos: 1 });
      expect(c.connected).toBe(true);
    }
    expect(isOnline(subs['1']!)).toBe(false);
    expect(await currentValues(s, subs['1']!)).toEqual({});
    const events = await ctx.database.db.select().from(deviceEvents).where(eq(deviceEvents.deviceId, subs['1']!));
    expect(events).toEqual([]);
    expect(isOnline(gateway.id)).toBe(false);
  });

  it("refuses, through the API, a gateway of project A attaching project B's device (404)", async () => {
    const a = await site('tenant A');
    const b = await site('tenant B');
    const ga = await gatewayWith(a, []);
    const victim = await device(b, 'victim', b.subType);
    expectFailure(
      await a.p.api.post(`/api/v1/device/${ga.gateway.id}/sub_devices`, { device: victim.id, address: '1' }),
      404,
    );
    const gb = await gatewayWith(b, []);
    const own = await device(a, 'own', a.subType);
    expectFailure(
      await a.p.api.post(`/api/v1/device/${gb.gateway.id}/sub_devices`, { device: own.id, address: '1' }),
      404,
    );
    expect(expectOk(await b.p.api.get(`/api/v1/device/${gb.gateway.id}/sub_devices`)).items).toEqual([]);
  });
});
