import type { AddressInfo } from 'node:net';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attachWebSocket } from '../../mqtt-broker/mqtt/websocket.ts';
import { startTestBroker, type TestBroker } from '../helpers/broker.ts';
import { createProject, createTestApp, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';
import { addDeviceWithToken } from '../helpers/factories.ts';
import { grantedQos as granted } from '../helpers/mqtt.ts';

/** Application subscriptions (device-protocol.md §9): read-only MQTT with the project's view key. */
let ctx: TestContext;
let tb: TestBroker;
let url: string;
const clients: MqttClient[] = [];

beforeAll(async () => {
  ctx = await createTestApp();
  tb = await startTestBroker(ctx);
  url = tb.url;
});
afterAll(async () => {
  for (const c of clients) c.end(true);
  await tb?.close();
  await ctx?.close();
});

interface Tenant {
  p: ProjectFixture;
  viewKey: string;
  viewSecret: string;
}
async function tenant(name: string): Promise<Tenant> {
  const p = await createProject(ctx, name);
  const issued = expectOk(await p.api.post('/api/v1/view_key', {}));
  return { p, viewKey: issued.view_key, viewSecret: issued.view_secret };
}
async function device(t: Tenant, name = 'dev') {
  const d = await addDeviceWithToken(t.p, { name });
  const detail = expectOk(await t.p.api.get(`/api/v1/device/${d.id}`));
  return { ...d, name, viewToken: detail.view_token as string };
}
async function connect(username: string, password: string, extra: IClientOptions = {}, to = url) {
  const c = await mqtt.connectAsync(to, { username, password, reconnectPeriod: 0, ...extra });
  clients.push(c);
  return c;
}
function collect(c: MqttClient) {
  const got: Array<{ topic: string; body: any }> = []; // eslint-disable-line @typescript-eslint/no-explicit-any -- arbitrary JSON
  c.on('message', (topic, payload) => got.push({ topic, body: JSON.parse(payload.toString()) }));
  return got;
}

describe('application subscriptions', () => {
  it('streams a project’s attributes, events, command replies and online changes to its view key only', async () => {
    const a = await tenant('a');
    const b = await tenant('b');
    const d1 = await device(a, 'pump');
    const theirs = await device(b, 'other');

    const viewer = await connect(a.viewKey, a.viewSecret);
    const got = collect(viewer);
    expect(
      await granted(viewer, [
        `${a.viewKey}/+/attributes`,
        `${a.viewKey}/+/event`,
        `${a.viewKey}/+/command_reply`,
        `${a.viewKey}/${d1.viewToken}/online`,
      ]),
    ).toEqual([0, 0, 0, 0]);
    // Outside its key, unknown kinds, wildcards: refused.
    expect(
      await granted(viewer, [
        '#',
        '$SYS/#',
        `${b.viewKey}/+/attributes`,
        `${a.viewKey}/+/secrets`,
        `${a.viewKey}/#`,
        'attributes',
        `+/+/attributes`,
      ]),
    ).toEqual([128, 128, 128, 128, 128, 128, 128]);

    const dev = await connect(d1.token, a.p.project.project_key);
    await expect
      .poll(() => got.filter((m) => m.topic.endsWith('/online')))
      .toEqual([
        {
          topic: `${a.viewKey}/${d1.viewToken}/online`,
          body: { device: { id: d1.id, name: 'pump' }, online: true, ts: expect.any(Number) },
        },
      ]);

    await dev.publishAsync('attributes', JSON.stringify({ temp: 21 }), { qos: 1 });
    await dev.publishAsync('event/report/1', JSON.stringify({ method: 'alarm', params: { code: 7 } }), { qos: 1 });
    expectOk(await a.p.api.put(`/api/v1/control/device/${d1.id}/attributes`, { target: 30 }));
    // The other project's traffic never arrives, though it is published: its own viewer watches it.
    const theirViewer = await connect(b.viewKey, b.viewSecret);
    const theirsGot = collect(theirViewer);
    expect(await granted(theirViewer, [`${b.viewKey}/+/attributes`, `${b.viewKey}/+/online`])).toEqual([0, 0]);
    const other = await connect(theirs.token, b.p.project.project_key);
    await other.publishAsync('attributes', JSON.stringify({ leak: 1 }), { qos: 1 });
    await expect.poll(() => theirsGot.map((m) => m.body.attributes ?? m.body.online)).toEqual([true, { leak: 1 }]);

    await expect.poll(() => got.filter((m) => m.topic.endsWith('/attributes')).length).toBe(2);
    const attrs = got.filter((m) => m.topic.endsWith('/attributes'));
    expect(attrs[0]).toEqual({
      topic: `${a.viewKey}/${d1.viewToken}/attributes`,
      body: {
        device: { id: d1.id, name: 'pump' },
        attributes: { temp: 21 },
        attr_type: 'report',
        ts: expect.any(Number),
      },
    });
    expect(attrs[1]!.body).toMatchObject({ attributes: { target: 30 }, attr_type: 'cloud' });
    await expect
      .poll(() => got.find((m) => m.topic.endsWith('/event'))?.body)
      .toMatchObject({ device: { id: d1.id }, method: 'alarm', params: { code: 7 } });

    // A command reply.
    await dev.subscribeAsync('command/send/+');
    const cmd = expectOk(await a.p.api.post(`/api/v1/control/device/${d1.id}/command`, { method: 'open', params: {} }));
    await dev.publishAsync(
      `command/reply/${cmd.command_id}`,
      JSON.stringify({ method: 'open', params: { ok: true }, id: cmd.command_id }),
      { qos: 1 },
    );
    await expect
      .poll(() => got.find((m) => m.topic.endsWith('/command_reply'))?.body)
      .toMatchObject({ device: { id: d1.id }, id: cmd.command_id, method: 'open', params: { ok: true } });

    await dev.endAsync();
    await expect
      .poll(() => got.filter((m) => m.topic.endsWith('/online')).map((m) => m.body.online))
      .toEqual([true, false]);
    expect(got.some((m) => JSON.stringify(m.body).includes('leak'))).toBe(false);
    expect(got.every((m) => m.topic.startsWith(`${a.viewKey}/`))).toBe(true);
  });

  it('streams alarm log entries on the alarm kind', async () => {
    const a = await tenant('alarms');
    const type = expectOk(await a.p.api.post('/api/v1/device_type', { name: 'boiler' }));
    const dev = expectOk(await a.p.api.post('/api/v1/device', { name: 'b1', type: type.id }));
    const detail = expectOk(await a.p.api.get(`/api/v1/device/${dev.id}`));
    const cert = expectOk(await a.p.api.get(`/api/v1/device/${dev.id}/certificate`));
    await ctx.services.alarms.rules.create(
      { projectId: a.p.project.id },
      {
        name: 'hot',
        device_type_id: type.id,
        level: 3,
        condition: { kind: 'attribute', identifier: 'temp', op: '>', value: 90 },
      },
    );
    const viewer = await connect(a.viewKey, a.viewSecret);
    const got = collect(viewer);
    await viewer.subscribeAsync(`${a.viewKey}/+/alarm`);
    const identity = (await ctx.services.deviceAuth.authenticate(a.p.project.project_key, cert.access_token))!;
    await ctx.services.currentValues.report(identity, { temp: 95 });
    await expect.poll(() => got.map((m) => m.topic)).toEqual([`${a.viewKey}/${detail.view_token}/alarm`]);
    expect(got[0]!.body).toMatchObject({
      device: { id: dev.id, name: 'b1' },
      alarm_status: 1,
      alarm_level: 3,
      id: expect.any(String),
    });
  });

  it('refuses a wrong view secret and closes a subscriber that publishes', async () => {
    const a = await tenant('c');
    await expect(
      mqtt.connectAsync(url, { username: a.viewKey, password: 'wrong-secret', reconnectPeriod: 0 }),
    ).rejects.toMatchObject({ code: 4 });
    const viewer = await connect(a.viewKey, a.viewSecret);
    const closed = new Promise<void>((resolve) => viewer.once('close', () => resolve()));
    viewer.publish('attributes', JSON.stringify({ x: 1 }));
    await closed;
    // A rotated secret stops working for new connections.
    expectOk(await a.p.api.post('/api/v1/view_key', {}));
    await expect(
      mqtt.connectAsync(url, { username: a.viewKey, password: a.viewSecret, reconnectPeriod: 0 }),
    ).rejects.toMatchObject({ code: 4 });
  });

  it('works over WebSocket /mqtt too', async () => {
    await ctx.app.listen({ port: 0, host: '127.0.0.1' });
    const closeWs = attachWebSocket(ctx.app.server, tb.broker);
    try {
      const a = await tenant('ws');
      const d = await device(a);
      const viewer = await connect(
        a.viewKey,
        a.viewSecret,
        {},
        `ws://127.0.0.1:${(ctx.app.server.address() as AddressInfo).port}/mqtt`,
      );
      const got = collect(viewer);
      await viewer.subscribeAsync(`${a.viewKey}/${d.viewToken}/attributes`);
      await ctx.services.currentValues.report(
        (await ctx.services.deviceAuth.authenticate(a.p.project.project_key, d.token))!,
        { v: 1 },
      );
      await expect.poll(() => got.map((m) => m.body.attributes)).toEqual([{ v: 1 }]);
    } finally {
      await closeWs();
    }
  });
});
