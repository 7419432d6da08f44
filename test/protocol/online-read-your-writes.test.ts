import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProject, createTestApp, deviceWithToken, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';
import { startTestBroker, type TestBroker } from '../helpers/broker.ts';

// Online state is read-your-writes: a read right after a connect or disconnect shows it, although
// presence is written in batches (the flush timer is not even started in tests: nothing but the read
// itself can make the change visible).
let ctx: TestContext;
let tb: TestBroker;
let p: ProjectFixture;

beforeAll(async () => {
  ctx = await createTestApp();
  tb = await startTestBroker(ctx);
  p = await createProject(ctx);
});
afterAll(async () => {
  await tb.close();
  await ctx.close();
});

/** Resolves when this node's presence has taken the device offline (the server saw the disconnect). */
const offlineSeen = (deviceId: string) =>
  new Promise<void>((resolve) => {
    const off = ctx.services.bus.on('device.offline', (e) => {
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
    expect(expectOk(await p.api.get('/api/v1/devices_stat'))).toMatchObject({ device_total: 2, online_device_total: 0 });
    expect(expectOk(await p.api.get('/api/v1/devices?online=1')).total).toBe(0);

    const c = await mqtt.connectAsync(tb.url, { username: d.token, password: p.project.project_key, reconnectPeriod: 0 });
    try {
      // No sleep, no flush: read at once.
      expect(expectOk(await p.api.get(`/api/v1/device/${d.id}`)).online).toBe(true);
      const list = expectOk(await p.api.get('/api/v1/devices?page_records=10'));
      expect(Object.fromEntries(list.items.map((i: { id: string; online: boolean }) => [i.id, i.online]))).toEqual({ [d.id]: true, [other.id]: false });
      const online = expectOk(await p.api.get('/api/v1/devices?online=1'));
      expect(online.items.map((i: { id: string }) => i.id)).toEqual([d.id]);
      expect(online.total).toBe(1);
      expect(expectOk(await p.api.get('/api/v1/devices_stat'))).toMatchObject({ device_total: 2, online_device_total: 1, offline_device_total: 1, active_device_total: 1 });
    } finally {
      const gone = offlineSeen(d.id);
      await c.endAsync();
      await gone;
    }

    expect(expectOk(await p.api.get(`/api/v1/device/${d.id}`)).online).toBe(false);
    expect(expectOk(await p.api.get('/api/v1/devices?online=1'))).toMatchObject({ items: [], total: 0 });
    expect(expectOk(await p.api.get('/api/v1/devices?online=0')).total).toBe(2);
    expect(expectOk(await p.api.get('/api/v1/devices_stat'))).toMatchObject({ online_device_total: 0, offline_device_total: 2 });
  });

  it("a customer's device list shows it too", async () => {
    const d = await deviceWithToken(p, { name: 'bound' });
    const cu = expectOk(await p.api.post('/api/v1/customer', { name: 'c', account: `c${Date.now()}`, password: 'long-enough-1' }));
    expectOk(await p.api.post(`/api/v1/customer/${cu.id}/devices`, { devices: [d.id] }));
    const c = await mqtt.connectAsync(tb.url, { username: d.token, password: p.project.project_key, reconnectPeriod: 0 });
    try {
      expect(expectOk(await p.api.get(`/api/v1/customer/${cu.id}/devices`)).items).toMatchObject([{ id: d.id, online: true }]);
    } finally {
      await c.endAsync();
    }
  });
});
