import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProject, createTestApp, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';
import { startTestBroker, type TestBroker } from '../helpers/broker.ts';
import { addDeviceWithToken } from '../helpers/factories.ts';
import { connectDevice } from '../helpers/mqtt.ts';

/** Custom data streams over MQTT `data/<identifier>` (device-protocol.md §3, §7), on a real broker. */
let ctx: TestContext;
let p: ProjectFixture;
let tb: TestBroker;
const clients: MqttClient[] = [];

beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx);
  tb = await startTestBroker(ctx);
});

afterAll(async () => {
  for (const c of clients) c.end(true);
  await tb?.close();
  await ctx?.close();
});

async function device(type?: string) {
  const d = await addDeviceWithToken(p, { name: 'dev', type });
  const c = await connectDevice(tb.url, { token: d.token, projectKey: p.project.project_key }, {}, clients);
  return { id: d.id as string, c };
}

const items = async (id: string, identifier: string) =>
  [...expectOk(await p.api.get(`/api/v1/device/${id}/data/${identifier}/messages`)).items].reverse() as Array<{
    direction: string;
    transport: string;
    hex: string;
    data: string;
  }>;

describe('MQTT data/<identifier>', () => {
  it('records the payload byte-exact before the QoS 1 acknowledgement', async () => {
    const { id, c } = await device();
    const bytes = Buffer.from([0x00, 0x7b, 0xff, 0x0d, 0x0a]);
    await c.publishAsync('data/modbus', bytes, { qos: 1 });
    expect(await items(id, 'modbus')).toEqual([
      expect.objectContaining({ direction: 'up', transport: 'mqtt', hex: '007bff0d0a' }),
    ]);
  });

  it('drops unknown streams and non-JSON on JSON streams without an answer, keeping the session; maps JSON objects', async () => {
    const t = expectOk(await p.api.post('/api/v1/device_type', { name: 'meter' }));
    expectOk(
      await p.api.post(`/api/v1/device_type/${t.id}/data_stream`, {
        identifier: 'json1',
        format: 'json',
        map_to_attributes: true,
      }),
    );
    const { id, c } = await device(t.id);
    const received: string[] = [];
    await c.subscribeAsync('data/+/set');
    c.on('message', (topic) => received.push(topic));
    const before = ctx.services.dataStreams.stats().dropped;
    await c.publishAsync('data/unknown', 'x', { qos: 1 });
    await c.publishAsync('data/json1', '{"temp":', { qos: 1 });
    await c.publishAsync('data/json1', '{"temp":19.5}', { qos: 1 });
    const after = ctx.services.dataStreams.stats().dropped;
    expect([after.unknown_stream - before.unknown_stream, after.not_json - before.not_json]).toEqual([1, 1]);
    expect(await items(id, 'unknown')).toEqual([]);
    expect((await items(id, 'json1')).map((m) => m.data)).toEqual(['{"temp":19.5}']);
    expect(await ctx.services.currentValues.get(p.project.id, id)).toEqual({ temp: 19.5 });
    expect(c.connected).toBe(true);
    expect(received).toEqual([]);
  });

  it('records a push on data/<identifier>/set once published', async () => {
    const { id, c } = await device();
    await c.subscribeAsync('data/+/set');
    const got = new Promise<Buffer>((resolve) => c.once('message', (_t, payload) => resolve(payload)));
    expectOk(await p.api.post(`/api/v1/control/device/${id}/data/cfg/set`, { type: 'hex', msg: 'c0ffee' }));
    expect((await got).toString('hex')).toBe('c0ffee');
    expect((await items(id, 'cfg')).map((m) => [m.direction, m.transport, m.hex])).toEqual([
      ['down', 'mqtt', 'c0ffee'],
    ]);
  });
});
