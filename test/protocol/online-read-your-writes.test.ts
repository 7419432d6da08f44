import net from 'node:net';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProject, deviceWithToken, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';
import { startAppWithBroker, type TestBroker } from '../helpers/broker.ts';

// Online state is read-your-writes: a read right after a connect or disconnect shows it, although
// presence is written in batches (the flush timer is not even started in tests: nothing but the read
// itself can make the change visible).
let ctx: TestContext;
let tb: TestBroker;
let tcpPort: number;
let p: ProjectFixture;
let stop: (() => Promise<void>) | undefined;

beforeAll(async () => {
  ({ ctx, tb, tcpPort, close: stop } = await startAppWithBroker({ tcp: {} }));
  p = await createProject(ctx);
});
afterAll(() => stop?.());

/** Resolves when this node's presence has taken the device online or offline (the server saw the (dis)connect). */
const seen = (event: 'device.online' | 'device.offline', deviceId: string) =>
  new Promise<void>((resolve) => {
    const off = ctx.services.bus.on(event, (e) => {
      if (e.deviceId !== deviceId) return;
      off();
      resolve();
    });
  });

describe('online state right after connect and disconnect', () => {
  it('GET /device/:id, GET /devices (and its online filter) and devices_stat show a connect and a disconnect at once', async () => {
    const d = await deviceWithToken(p, { name: 'ryw' });
    const other = await deviceWithToken(p, { name: 'stays offline' });
    // Warm the cached counts first: they must not hide the change either.
    expect(expectOk(await p.api.get('/api/v1/devices_stat'))).toMatchObject({
      device_total: 2,
      online_device_total: 0,
    });
    expect(expectOk(await p.api.get('/api/v1/devices?online=1')).total).toBe(0);

    const c = await mqtt.connectAsync(tb.url, {
      username: d.token,
      password: p.project.project_key,
      reconnectPeriod: 0,
    });
    try {
      // No sleep, no flush: read at once.
      expect(expectOk(await p.api.get(`/api/v1/device/${d.id}`)).online).toBe(true);
      const list = expectOk(await p.api.get('/api/v1/devices?page_records=10'));
      expect(Object.fromEntries(list.items.map((i: { id: string; online: boolean }) => [i.id, i.online]))).toEqual({
        [d.id]: true,
        [other.id]: false,
      });
      const online = expectOk(await p.api.get('/api/v1/devices?online=1'));
      expect(online.items.map((i: { id: string }) => i.id)).toEqual([d.id]);
      expect(online.total).toBe(1);
      expect(expectOk(await p.api.get('/api/v1/devices_stat'))).toMatchObject({
        device_total: 2,
        online_device_total: 1,
        offline_device_total: 1,
        active_device_total: 1,
      });
    } finally {
      const gone = seen('device.offline', d.id);
      await c.endAsync();
      await gone;
    }

    expect(expectOk(await p.api.get(`/api/v1/device/${d.id}`)).online).toBe(false);
    expect(expectOk(await p.api.get('/api/v1/devices?online=1'))).toMatchObject({ items: [], total: 0 });
    expect(expectOk(await p.api.get('/api/v1/devices?online=0')).total).toBe(2);
    expect(expectOk(await p.api.get('/api/v1/devices_stat'))).toMatchObject({
      online_device_total: 0,
      offline_device_total: 2,
    });
  });

  it("a customer's device list shows it too", async () => {
    const d = await deviceWithToken(p, { name: 'bound' });
    const cu = expectOk(
      await p.api.post('/api/v1/customer', { name: 'c', account: `c${Date.now()}`, password: 'long-enough-1' }),
    );
    expectOk(await p.api.post(`/api/v1/customer/${cu.id}/devices`, { devices: [d.id] }));
    const c = await mqtt.connectAsync(tb.url, {
      username: d.token,
      password: p.project.project_key,
      reconnectPeriod: 0,
    });
    try {
      expect(expectOk(await p.api.get(`/api/v1/customer/${cu.id}/devices`)).items).toMatchObject([
        { id: d.id, online: true },
      ]);
    } finally {
      await c.endAsync();
    }
  });
});

describe('raw TCP and HTTP devices', () => {
  it('a TCP login and the end of its link show at once; HTTP reports never make a device online', async () => {
    const d = await deviceWithToken(p, { name: 'dtu' });
    const up = seen('device.online', d.id);
    const socket = net.connect(tcpPort, '127.0.0.1');
    socket.write(`${p.project.project_key}&${d.token}\r\n`);
    await up;
    expect(expectOk(await p.api.get(`/api/v1/device/${d.id}`)).online).toBe(true);
    expect(expectOk(await p.api.get('/api/v1/devices?online=1')).items.map((i: { id: string }) => i.id)).toContain(
      d.id,
    );
    const before = expectOk(await p.api.get('/api/v1/devices_stat')).online_device_total;

    const down = seen('device.offline', d.id);
    socket.destroy();
    await down;
    expect(expectOk(await p.api.get(`/api/v1/device/${d.id}`)).online).toBe(false);
    expect(expectOk(await p.api.get('/api/v1/devices_stat')).online_device_total).toBe(before - 1);

    // HTTP device access records activity only (device-protocol.md §11).
    const res = await ctx.app.inject({
      method: 'POST',
      url: `/device/v1/${d.token}/attributes`,
      headers: { 'project-key': p.project.project_key },
      payload: { t: 1 },
    });
    expect(res.json()).toMatchObject({ result: 1 });
    // Its time shows at once too (laid over the stored ones until the batch is written), in the device and in lists.
    expect(expectOk(await p.api.get(`/api/v1/device/${d.id}`))).toMatchObject({
      online: false,
      active: { attributes: expect.any(Number), connect: expect.any(Number) },
    });
    const item = expectOk(await p.api.get('/api/v1/devices?page_records=100')).items.find(
      (i: { id: string }) => i.id === d.id,
    );
    expect(item.active).toMatchObject({ attributes: expect.any(Number), disconnect: expect.any(Number) });
    await ctx.services.presence.flush();
    expect(expectOk(await p.api.get(`/api/v1/device/${d.id}`)).active).toEqual(item.active);
  });
});
