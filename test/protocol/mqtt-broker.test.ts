import net from 'node:net';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { eq } from 'drizzle-orm';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devices } from '../../src/db/schema/index.ts';
import type { Broker } from '../../mqtt-broker/mqtt/broker.ts';
import { DeviceTopicRouter } from '../../mqtt-broker/mqtt/device-router.ts';
import { attachWebSocket } from '../../mqtt-broker/mqtt/websocket.ts';
import { createProject, createTestApp, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';
import { startTestBroker, type TestBroker } from '../helpers/broker.ts';
import { addDeviceWithToken } from '../helpers/factories.ts';
import { until } from '../helpers/wait.ts';

const MAX_PACKET = 16 * 1024;
const RATE = 20;

let ctx: TestContext;
let p: ProjectFixture;
let tb: TestBroker;
let broker: Broker;
let port: number;
const clients: MqttClient[] = [];

beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx);
  tb = await startTestBroker(ctx, { maxPacketSize: MAX_PACKET, rateLimit: RATE });
  ({ broker, port } = tb);
});

afterAll(async () => {
  for (const c of clients) c.end(true);
  await tb?.close();
  await ctx?.close();
});

const newDevice = (name = 'dev') => addDeviceWithToken(p, { name });

function options(token: string, extra: IClientOptions = {}): IClientOptions {
  return {
    username: token,
    password: p.project.project_key,
    clientId: 'esp32',
    reconnectPeriod: 0,
    connectTimeout: 5_000,
    ...extra,
  };
}

async function connect(
  token: string,
  extra: IClientOptions = {},
  url = `mqtt://127.0.0.1:${port}`,
): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, options(token, extra));
  clients.push(c);
  return c;
}

/** Resolves with the CONNACK code of a refused connection. */
function refusedCode(username: string, password: string, protocolVersion: 4 | 5): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { username, password, protocolVersion, reconnectPeriod: 0 });
    c.once('connect', () => {
      c.end(true);
      reject(new Error('connected'));
    });
    c.once('error', (err) => {
      c.end(true);
      resolve((err as Error & { code?: number }).code);
    });
  });
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- arbitrary JSON
function nextMessage(c: MqttClient, topic: string): Promise<{ topic: string; body: any }> {
  return new Promise((resolve) => {
    const onMessage = (t: string, payload: Buffer) => {
      if (t !== topic) return;
      c.off('message', onMessage);
      let body: unknown;
      try {
        body = JSON.parse(payload.toString());
      } catch {
        body = payload.toString();
      }
      resolve({ topic: t, body });
    };
    c.on('message', onMessage);
  });
}

/** Publishes and waits for the answer on `responseTopic`. */
async function request(c: MqttClient, topic: string, payload: unknown, responseTopic: string, qos: 0 | 1 = 0) {
  const answer = nextMessage(c, responseTopic);
  await c.publishAsync(topic, typeof payload === 'string' ? payload : JSON.stringify(payload), { qos });
  return (await answer).body;
}

/** The SUBACK codes; mqtt.js fails the whole call when one is refused, so read them from the packet. */
function grantedQos(c: MqttClient, filters: string[]): Promise<number[]> {
  return new Promise((resolve) => {
    c.subscribe(filters, (err, granted) => {
      const codes = (err as (Error & { packet?: { granted?: number[] } }) | null)?.packet?.granted;
      resolve(codes ?? (granted ?? []).map((g) => g.qos));
    });
  });
}

const closed = (c: MqttClient) =>
  new Promise<void>((resolve) => (c.disconnected ? resolve() : c.once('close', () => resolve())));

describe('commands sent right after connect', () => {
  it('reach a device that subscribes to command/send/+ only after the command was sent', async () => {
    const d = await newDevice('late subscriber');
    const c = await connect(d.token);
    const view = expectOk(
      await p.api.post(`/api/v1/control/device/${d.id}/command`, { method: 'blink', params: { n: 2 } }),
    );
    expect(view.state).toBe('sent');
    const sent = nextMessage(c, `command/send/${view.command_id}`);
    await c.subscribeAsync('command/send/+');
    expect((await sent).body).toEqual({ method: 'blink', params: { n: 2 }, id: view.command_id });
  });
});

describe('MQTT connect (device-protocol.md §2)', () => {
  for (const protocolVersion of [4, 5] as const) {
    it(`accepts the access token and project key over MQTT ${protocolVersion === 4 ? '3.1.1' : '5'}`, async () => {
      const d = await newDevice();
      const c = await connect(d.token, { protocolVersion });
      expect(c.connected).toBe(true);
      expect(ctx.services.sessions.isOnline(d.id)).toBe(true);
      await c.endAsync();
    });
  }

  it('refuses an unknown token with "bad user name or password" (rc 4 / 0x86)', async () => {
    expect(await refusedCode('no-such-token', p.project.project_key, 4)).toBe(4);
    expect(await refusedCode('no-such-token', p.project.project_key, 5)).toBe(0x86);
  });

  it('refuses a wrong project key with rc 4', async () => {
    const d = await newDevice();
    const other = await createProject(ctx, 'other');
    expect(await refusedCode(d.token, other.project.project_key, 4)).toBe(4);
  });

  it('refuses a disabled device with "not authorized" (rc 5 / 0x87)', async () => {
    const d = await newDevice();
    await ctx.database.db.update(devices).set({ disabled: true }).where(eq(devices.id, d.id));
    expect(await refusedCode(d.token, p.project.project_key, 4)).toBe(5);
    expect(await refusedCode(d.token, p.project.project_key, 5)).toBe(0x87);
  });
});

describe('device topics (device-protocol.md §3)', () => {
  it('answers attributes with {"result":1,"ts"} and stores the values before the QoS 1 PUBACK', async () => {
    const d = await newDevice();
    const c = await connect(d.token);
    await c.subscribeAsync('attributes/response');
    const answer = nextMessage(c, 'attributes/response');
    await c.publishAsync('attributes', JSON.stringify({ temperature: 21.5, on: true }), { qos: 1 });
    // After the PUBACK the report is durable (history) and is the current value.
    expect(
      (await ctx.services.historyStore.series(p.project.id, d.id, 'temperature', 0, Date.now() + 1000, 10, 0)).map(
        (x) => x.value,
      ),
    ).toEqual([21.5]);
    expect(await ctx.services.currentValues.get(p.project.id, d.id)).toEqual({ temperature: 21.5, on: true });
    const { body } = await answer;
    expect(body).toEqual({ result: 1, ts: expect.any(Number) });
  });

  it('publishes an answer only to a device subscribed to its topic (nothing enters the routing for the others)', async () => {
    const d = await newDevice();
    const c = await connect(d.token);
    const routed: string[] = [];
    const publish = broker.aedes.publish.bind(broker.aedes);
    broker.aedes.publish = ((packet: Parameters<typeof publish>[0], cb: Parameters<typeof publish>[1]) => {
      if (packet.topic.startsWith(`$d/${d.id}/`)) routed.push(packet.topic);
      return publish(packet, cb);
    }) as typeof broker.aedes.publish;
    try {
      await c.publishAsync('attributes', JSON.stringify({ t: 1 }), { qos: 1 });
      await c.publishAsync('event/report/5', JSON.stringify({ method: 'boot', params: {} }), { qos: 1 });
      expect(routed).toEqual([]);
      await c.subscribeAsync(['attributes/response', 'event/response/+']);
      const answer = nextMessage(c, 'attributes/response');
      await c.publishAsync('attributes', JSON.stringify({ t: 2 }), { qos: 1 });
      expect((await answer).body).toEqual({ result: 1, ts: expect.any(Number) });
      const event = nextMessage(c, 'event/response/6');
      await c.publishAsync('event/report/6', JSON.stringify({ method: 'boot', params: {} }), { qos: 1 });
      expect((await event).body).toMatchObject({ result: 1 });
      expect(routed).toEqual([`$d/${d.id}/attributes/response`, `$d/${d.id}/event/response/6`]);
    } finally {
      broker.aedes.publish = publish;
    }
  });

  it('answers attributes/get/<id> with all or the asked keys, reported and cloud', async () => {
    const d = await newDevice();
    expectOk(await p.api.put(`/api/v1/control/device/${d.id}/attributes`, { limit: 5 }));
    const c = await connect(d.token, { protocolVersion: 5 });
    await c.subscribeAsync('attributes/get/response/+');
    await c.publishAsync('attributes', JSON.stringify({ a: 1, b: 'x' }), { qos: 1 });
    expect(await request(c, 'attributes/get/7', {}, 'attributes/get/response/7')).toEqual({
      result: 1,
      attributes: { a: 1, b: 'x', limit: 5 },
    });
    expect(await request(c, 'attributes/get/8', { keys: ['b'] }, 'attributes/get/response/8')).toEqual({
      result: 1,
      attributes: { b: 'x' },
    });
    expect(await request(c, 'attributes/get/9', { keys: 'b' }, 'attributes/get/response/9')).toMatchObject({
      result: 0,
      errcode: 400,
    });
  });

  it('stores back-dated attributes/series and answers on attributes/series/response', async () => {
    const d = await newDevice();
    const c = await connect(d.token);
    await c.subscribeAsync('attributes/series/response');
    const hourAgo = Date.now() - 3_600_000;
    const series = [
      { ts: hourAgo, attributes: { t: 1 } },
      { ts: hourAgo + 60_000, attributes: { t: 2 } },
    ];
    expect(await request(c, 'attributes/series', series, 'attributes/series/response', 1)).toEqual({
      result: 1,
      ts: expect.any(Number),
    });
    expect(await ctx.services.currentValues.get(p.project.id, d.id)).toEqual({ t: 2 });
    // Each entry lands in history at its own time.
    const history = expectOk(await p.api.get(`/api/v1/device/${d.id}/attribute/t/series`));
    expect(history.map((x: { ts: number; value: number }) => [x.ts, x.value])).toEqual([
      [hourAgo + 60_000, 2],
      [hourAgo, 1],
    ]);
    expect(
      await request(
        c,
        'attributes/series',
        [
          { ts: hourAgo, attributes: { t: 3 } },
          { ts: 'x', attributes: {} },
        ],
        'attributes/series/response',
      ),
    ).toMatchObject({ result: 0, errcode: 400 });
    // Older than the project's history retention (365 days by default): refused, nothing stored.
    expect(
      await request(
        c,
        'attributes/series',
        [
          { ts: hourAgo, attributes: { t: 4 } },
          { ts: 1, attributes: { t: 5 } },
        ],
        'attributes/series/response',
      ),
    ).toMatchObject({ result: 0, errcode: 400 });
    expect(await ctx.services.currentValues.get(p.project.id, d.id)).toEqual({ t: 2 });
    expect(expectOk(await p.api.get(`/api/v1/device/${d.id}/attribute/t/series`))).toHaveLength(2);
  });

  it('logs event/report/<id> and answers event/response/<id>', async () => {
    const d = await newDevice();
    const c = await connect(d.token);
    await c.subscribeAsync('event/response/+');
    const seen = new Promise((resolve) =>
      ctx.services.bus.on('device.event', (e) => e.deviceId === d.id && resolve(e)),
    );
    expect(await request(c, 'event/report/12', { method: 'alarm', params: { level: 2 } }, 'event/response/12')).toEqual(
      { result: 1 },
    );
    expect(await seen).toMatchObject({ method: 'alarm', params: { level: 2 } });
    expect(await request(c, 'event/report/13', { params: {} }, 'event/response/13')).toMatchObject({
      result: 0,
      errcode: 400,
    });
  });

  it('answers bad input on the response topic and keeps the session', async () => {
    const d = await newDevice();
    const c = await connect(d.token);
    await c.subscribeAsync('attributes/response');
    expect(await request(c, 'attributes', 'not json', 'attributes/response')).toEqual({
      result: 0,
      errcode: 400,
      message: 'payload must be JSON',
    });
    expect(await request(c, 'attributes', [1, 2], 'attributes/response')).toMatchObject({ result: 0, errcode: 400 });
    // Unknown topics and $SYS are dropped; the session stays.
    await c.publishAsync('$SYS/x', 'y', { qos: 1 });
    await c.publishAsync('whatever/else', 'y', { qos: 1 });
    expect(await request(c, 'attributes', { ok: 1 }, 'attributes/response')).toMatchObject({ result: 1 });
    expect(c.connected).toBe(true);
  });

  it('delivers data/<identifier>/set pushed over HTTP, and counts data/<identifier> as activity', async () => {
    const d = await newDevice();
    const c = await connect(d.token);
    await c.subscribeAsync('data/+/set');
    const got = new Promise<{ topic: string; payload: string }>((resolve) =>
      c.once('message', (topic, payload) => resolve({ topic, payload: payload.toString() })),
    );
    expectOk(await p.api.post(`/api/v1/control/device/${d.id}/data/raw1/set`, { type: 'text', msg: 'hello' }));
    expect(await got).toEqual({ topic: 'data/raw1/set', payload: 'hello' });
    await c.publishAsync('data/raw1', Buffer.from([1, 2, 3]), { qos: 1 });
    await ctx.services.presence.flush();
    const read = expectOk(await p.api.get(`/api/v1/device/${d.id}`));
    expect(read.active).toMatchObject({ data: expect.any(Number) });
  });
});

describe('privacy between devices', () => {
  it("refuses #, $SYS/# and upstream filters, and never shows another device's traffic", async () => {
    const a = await newDevice('a');
    const b = await newDevice('b');
    const ca = await connect(a.token);
    const cb = await connect(b.token, { protocolVersion: 5 });
    expect(await grantedQos(ca, ['#', '$SYS/#', 'attributes', '+/push', 'attributes/push'])).toEqual([
      128, 128, 128, 128, 0,
    ]);
    const seenByA: string[] = [];
    ca.on('message', (topic, payload) => seenByA.push(`${topic} ${payload.toString()}`));
    await cb.subscribeAsync('attributes/push');
    const pushedToB = nextMessage(cb, 'attributes/push');
    expectOk(await p.api.post(`/api/v1/control/device/${b.id}/attributes`, { secret: 'for-b' }));
    expect((await pushedToB).body).toEqual({ secret: 'for-b' });
    // A publishing on a downstream topic or on B's internal topic reaches nobody.
    const bSaw: string[] = [];
    cb.on('message', (topic, payload) => bSaw.push(`${topic} ${payload.toString()}`));
    await ca.publishAsync('attributes/push', JSON.stringify({ evil: 1 }), { qos: 1 });
    await ca.publishAsync(`$d/${b.id}/attributes/push`, JSON.stringify({ evil: 2 }), { qos: 1 });
    await cb.publishAsync('attributes', JSON.stringify({ x: 1 }), { qos: 1 });
    // A marker to A: everything routed before it has been delivered.
    const marker = nextMessage(ca, 'attributes/push');
    expectOk(await p.api.post(`/api/v1/control/device/${a.id}/attributes`, { mine: 1 }));
    await marker;
    const marker2 = nextMessage(cb, 'attributes/push');
    expectOk(await p.api.post(`/api/v1/control/device/${b.id}/attributes`, { again: 1 }));
    await marker2;
    expect(seenByA).toEqual(['attributes/push {"mine":1}']);
    expect(bSaw).toEqual(['attributes/push {"again":1}']);
  });
});

describe('unsubscribe', () => {
  it('stops delivery of a downstream topic after UNSUBSCRIBE', async () => {
    const d = await newDevice();
    const c = await connect(d.token);
    await c.subscribeAsync(['attributes/push', 'data/+/set']);
    const seen: string[] = [];
    c.on('message', (topic) => seen.push(topic));
    await c.unsubscribeAsync('attributes/push');
    expectOk(await p.api.post(`/api/v1/control/device/${d.id}/attributes`, { ignored: 1 }));
    // A marker on the topic still subscribed: the push before it was routed already.
    const marker = nextMessage(c, 'data/m/set');
    expectOk(await p.api.post(`/api/v1/control/device/${d.id}/data/m/set`, { type: 'text', msg: 'm' }));
    await marker;
    expect(seen).toEqual(['data/m/set']);
  });

  it("holds a device's subscriptions by device, outside Aedes' topic tree, and forgets them when it leaves", async () => {
    const router = (broker.aedes as unknown as { mq: unknown }).mq as DeviceTopicRouter;
    expect(router).toBeInstanceOf(DeviceTopicRouter);
    const before = router.devices;
    const d = await newDevice();
    const c = await connect(d.token);
    await c.subscribeAsync(['attributes/push', 'command/send/+']);
    expect(router.devices).toBe(before + 1);
    expect(router.subscriptionsOf(d.id)).toBe(2);
    await c.unsubscribeAsync('attributes/push');
    expect(router.subscriptionsOf(d.id)).toBe(1);
    await c.endAsync();
    await until(() => router.devices === before, 'the subscriptions of the closed connection removed');
  });

  it("cannot remove a subscription by naming the broker's own key for it", async () => {
    const router = (broker.aedes as unknown as { mq: unknown }).mq as DeviceTopicRouter;
    const d = await newDevice();
    const c = await connect(d.token);
    await c.subscribeAsync('attributes/response');
    await c.unsubscribeAsync(`$d/${d.id}/attributes/response`);
    expect(router.subscriptionsOf(d.id)).toBe(1);
    expect(await request(c, 'attributes', { v: 1 }, 'attributes/response')).toMatchObject({ result: 1 });
  });
});

describe('sessions and presence (device-protocol.md §2, §11)', () => {
  it('closes the older connection when the same device connects again', async () => {
    const d = await newDevice();
    const first = await connect(d.token);
    const firstClosed = closed(first);
    const second = await connect(d.token);
    await firstClosed;
    expect(second.connected).toBe(true);
    expect(ctx.services.sessions.isOnline(d.id)).toBe(true);
    await second.subscribeAsync('attributes/response');
    expect(await request(second, 'attributes', { v: 1 }, 'attributes/response')).toMatchObject({ result: 1 });
  });

  it('ends the session when the token is reset, and shows the device offline', async () => {
    const d = await newDevice();
    const c = await connect(d.token);
    const wasClosed = closed(c);
    const offline = new Promise((resolve) =>
      ctx.services.bus.on('device.offline', (e) => e.deviceId === d.id && resolve(e)),
    );
    expectOk(await p.api.post(`/api/v1/device/${d.id}/certificate/reset`));
    await wasClosed;
    expect(ctx.services.sessions.isOnline(d.id)).toBe(false);
    expect(await offline).toMatchObject({ reason: 'kicked' });
  });

  it('shows online after connect and offline after disconnect', async () => {
    const d = await newDevice();
    const c = await connect(d.token);
    await ctx.services.presence.flush();
    expect(expectOk(await p.api.get(`/api/v1/device/${d.id}`)).online).toBe(true);
    const offline = new Promise((resolve) =>
      ctx.services.bus.on('device.offline', (e) => e.deviceId === d.id && resolve(e)),
    );
    await c.endAsync();
    await offline;
    await ctx.services.presence.flush();
    expect(expectOk(await p.api.get(`/api/v1/device/${d.id}`)).online).toBe(false);
  });
});

describe('commands (device-protocol.md §10)', () => {
  it('sends an HTTP command to the device and stores its reply', async () => {
    const d = await newDevice();
    const c = await connect(d.token);
    // QoS 1 subscriptions: commands arrive as QoS 1 publishes the device acknowledges.
    const granted = await c.subscribeAsync(['command/send/+', 'command/reply/response/+'], { qos: 1 });
    expect(granted.map((g) => g.qos)).toEqual([1, 1]);
    const sent = nextMessage(c, 'command/send/1');
    const cmd = expectOk(
      await p.api.post(`/api/v1/control/device/${d.id}/command`, { method: 'reboot', params: { delay: 1 } }),
    );
    expect(cmd).toMatchObject({ command_id: 1, state: 'sent' });
    expect((await sent).body).toEqual({ method: 'reboot', params: { delay: 1 }, id: 1 });
    expect(
      await request(
        c,
        'command/reply/1',
        { method: 'reboot', params: { ok: true }, id: 1 },
        'command/reply/response/1',
      ),
    ).toEqual({ result: 1 });
    const log = expectOk(await p.api.get(`/api/v1/device/${d.id}/commands`));
    expect(log.items[0]).toMatchObject({
      command_id: 1,
      state: 'replied',
      reply: { method: 'reboot', params: { ok: true } },
    });
    expect(
      await request(c, 'command/reply/99', { method: 'x', params: {}, id: 99 }, 'command/reply/response/99'),
    ).toMatchObject({ result: 0, errcode: 404 });
  });

  it('delivers a queued command when the device connects and subscribes', async () => {
    const d = await newDevice();
    const queued = expectOk(
      await p.api.post(`/api/v1/control/device/${d.id}/command`, { method: 'later', params: {}, ttl: 600 }),
    );
    expect(queued.state).toBe('queued');
    const c = await connect(d.token, { protocolVersion: 5 });
    const sent = nextMessage(c, `command/send/${queued.command_id}`);
    await c.subscribeAsync('command/send/+');
    expect((await sent).body).toEqual({ method: 'later', params: {}, id: queued.command_id });
  });
});

describe('abuse: nothing a device sends harms another', () => {
  it('closes only the client that sends garbage or an oversized packet', async () => {
    const good = await newDevice();
    const g = await connect(good.token);
    await g.subscribeAsync('attributes/response');

    const raw = net.connect(port, '127.0.0.1');
    await once(raw, 'connect');
    const rawClosed = once(raw, 'close');
    raw.write(Buffer.from('GET / HTTP/1.1\r\n\r\n\xff\xff\xff\xff'));
    await rawClosed;

    // A connected device that sends a reserved packet type.
    const bad = await newDevice();
    const b0 = await connect(bad.token);
    const b0Closed = closed(b0);
    (b0 as unknown as { stream: NodeJS.WritableStream }).stream.write(Buffer.from([0xf0, 0x00]));
    await b0Closed;

    for (const protocolVersion of [4, 5] as const) {
      const big = await newDevice();
      const b = await connect(big.token, { protocolVersion });
      const bigClosed = closed(b);
      b.publish('attributes', Buffer.alloc(MAX_PACKET + 10, 0x20));
      await bigClosed;
    }

    expect(await request(g, 'attributes', { still: 'here' }, 'attributes/response')).toMatchObject({ result: 1 });
  });

  it('answers 429 past the rate limit, then disconnects a flooding device only', async () => {
    const flooder = await newDevice();
    const calm = await newDevice();
    const f = await connect(flooder.token);
    const c = await connect(calm.token);
    await f.subscribeAsync('attributes/response');
    await c.subscribeAsync('attributes/response');
    const answers: any[] = []; // eslint-disable-line @typescript-eslint/no-explicit-any -- arbitrary JSON
    f.on('message', (_t, payload) => answers.push(JSON.parse(payload.toString())));
    const fClosed = closed(f);
    for (let i = 0; i < RATE * 15; i++) f.publish('attributes', JSON.stringify({ i }));
    await fClosed;
    expect(answers.some((a) => a.result === 0 && a.errcode === 429 && a.message === 'rate limit')).toBe(true);
    expect(await request(c, 'attributes', { calm: 1 }, 'attributes/response')).toMatchObject({ result: 1 });
  });
});

describe('MQTT over WebSocket', () => {
  it('connects on /mqtt of the HTTP port and reports attributes', async () => {
    await ctx.app.listen({ port: 0, host: '127.0.0.1' });
    const closeWs = attachWebSocket(ctx.app.server, broker);
    try {
      const httpPort = (ctx.app.server.address() as AddressInfo).port;
      const d = await newDevice();
      const c = await connect(d.token, {}, `ws://127.0.0.1:${httpPort}/mqtt`);
      await c.subscribeAsync('attributes/response');
      expect(await request(c, 'attributes', { ws: true }, 'attributes/response', 1)).toMatchObject({ result: 1 });
      expect(await ctx.services.currentValues.get(p.project.id, d.id)).toEqual({ ws: true });
      await c.endAsync();
    } finally {
      await closeWs();
    }
  });
});

describe('the vendor ESP32 SDK sequence', () => {
  it('connects, subscribes its four topics, reports, reads and replies to a command', async () => {
    const d = await newDevice();
    expectOk(await p.api.put(`/api/v1/control/device/${d.id}/attributes`, { interval: 30 }));
    const c = await connect(d.token, { clientId: '24:6F:28:AA:BB:CC', keepalive: 120 });
    const granted = await c.subscribeAsync([
      'attributes/push',
      'attributes/get/response/+',
      'command/send/+',
      'attributes/response',
    ]);
    expect(granted.map((g) => g.qos)).toEqual([0, 0, 0, 0]);
    expect(await request(c, 'attributes', { temperature: 20 }, 'attributes/response')).toEqual({
      result: 1,
      ts: expect.any(Number),
    });
    expect(await request(c, 'attributes/get/1000', {}, 'attributes/get/response/1000')).toEqual({
      result: 1,
      attributes: { interval: 30, temperature: 20 },
    });
    const sent = nextMessage(c, 'command/send/1');
    expectOk(await p.api.post(`/api/v1/control/device/${d.id}/command`, { method: 'led', params: { on: true } }));
    expect((await sent).body).toEqual({ method: 'led', params: { on: true }, id: 1 });
    const replied = new Promise((resolve) =>
      ctx.services.bus.on('device.command_reply', (e) => e.deviceId === d.id && resolve(e)),
    );
    await c.publishAsync('command/reply/1', JSON.stringify({ method: 'led', params: { on: true }, id: 1 }));
    await replied;
    const log = expectOk(await p.api.get(`/api/v1/device/${d.id}/commands`));
    expect(log.items[0]).toMatchObject({ state: 'replied' });
  });
});
