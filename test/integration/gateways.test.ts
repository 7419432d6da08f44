import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  client,
  createProject,
  createTestApp,
  expectFailure,
  expectOk,
  type ProjectFixture,
  type TestContext,
} from '../helpers/app.ts';
import { addDevice } from '../helpers/factories.ts';

/** The gateway API (device-protocol.md §8, http-api.md §4): attaching, listing and detaching sub-devices. */
let ctx: TestContext;
let p: ProjectFixture;
const types: Record<'gateway' | 'sub' | 'direct', string> = { gateway: '', sub: '', direct: '' };

beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx);
  types.gateway = expectOk(await p.api.post('/api/v1/device_type', { name: 'gateway', conn_type: '3' })).id;
  types.sub = expectOk(await p.api.post('/api/v1/device_type', { name: 'sensor', conn_type: '2' })).id;
  types.direct = expectOk(await p.api.post('/api/v1/device_type', { name: 'meter', conn_type: '1' })).id;
});
afterAll(() => ctx?.close());

async function device(kind?: keyof typeof types, f: ProjectFixture = p, type?: string): Promise<string> {
  return (await addDevice(f.api, { name: kind ?? 'untyped', type: type ?? (kind ? types[kind] : undefined) })).id;
}
const attach = (gateway: string, body: unknown, f: ProjectFixture = p) =>
  f.api.post(`/api/v1/device/${gateway}/sub_devices`, body);
const list = async (gateway: string, query = '') =>
  expectOk(await p.api.get(`/api/v1/device/${gateway}/sub_devices${query}`));

describe('attaching a sub-device', () => {
  it('attaches at an address and lists it with its address and online state', async () => {
    const gw = await device('gateway');
    const sub = await device('sub');
    expect(expectOk(await attach(gw, { device: sub, address: 'AA:BB:01' }))).toEqual({
      id: sub,
      name: 'sub',
      gateway_id: gw,
      address: 'AA:BB:01',
    });
    expect(await list(gw)).toEqual({
      items: [{ id: sub, name: 'sub', type: types.sub, address: 'AA:BB:01', online: false }],
      total: 1,
      page_total: 1,
    });
    // The sub-device's own read names its gateway; the gateway's does not.
    expect(expectOk(await p.api.get(`/api/v1/device/${sub}`)).gateway).toEqual({ id: gw, address: 'AA:BB:01' });
    expect(expectOk(await p.api.get(`/api/v1/device/${gw}`)).gateway).toBeNull();
  });

  it('requires a gateway (conn_type "3") and a sub-device (conn_type "2"); an untyped device is neither', async () => {
    const gw = await device('gateway');
    const sub = await device('sub');
    for (const notGateway of [await device('sub'), await device('direct'), await device()]) {
      const res = expectFailure(await attach(notGateway, { device: sub, address: '1' }), 400);
      expect(res.message).toMatch(/not a gateway/);
    }
    for (const notSub of [await device('gateway'), await device('direct'), await device(), gw]) {
      const res = expectFailure(await attach(gw, { device: notSub, address: '1' }), 400);
      expect(res.message).toMatch(/not a gateway sub-device/);
    }
    expect((await list(gw)).items).toEqual([]);
  });

  it('answers 404 for unknown devices', async () => {
    const gw = await device('gateway');
    expectFailure(await attach('no-such-device', { device: await device('sub'), address: '1' }), 404);
    expectFailure(await attach(gw, { device: 'no-such-device', address: '1' }), 404);
    expectFailure(await p.api.get('/api/v1/device/no-such-device/sub_devices'), 404);
    expectFailure(await p.api.post('/api/v1/device/no-such-device/sub_devices_remove', { devices: ['x'] }), 404);
  });

  it('checks the address: 1–64 letters, digits, "_", ".", ":", "-"', async () => {
    const gw = await device('gateway');
    const sub = await device('sub');
    for (const address of ['', 'a b', 'a/b', '+', '#', 'x'.repeat(65), 'é', 7]) {
      const res = expectFailure(await attach(gw, { device: sub, address }), 400);
      expect(res.errors[0].path).toBe('address');
    }
    expectOk(await attach(gw, { device: sub, address: 'x'.repeat(64) }));
    expectOk(await attach(gw, { device: sub, address: 'rs485_1.unit-2:3' }));
    expectFailure(await attach(gw, { address: '1' }), 400);
  });

  it('keeps addresses unique within a gateway, not across gateways', async () => {
    const gw1 = await device('gateway');
    const gw2 = await device('gateway');
    const [a, b, c] = [await device('sub'), await device('sub'), await device('sub')];
    expectOk(await attach(gw1, { device: a, address: '1' }));
    const dup = expectFailure(await attach(gw1, { device: b, address: '1' }), 409);
    expect(dup.message).toMatch(/already used/);
    expectOk(await attach(gw2, { device: c, address: '1' }));
    expect((await list(gw1)).items.map((i: { id: string }) => i.id)).toEqual([a]);
  });

  it('a device belongs to at most one gateway; attaching again to the same gateway changes its address', async () => {
    const gw1 = await device('gateway');
    const gw2 = await device('gateway');
    const sub = await device('sub');
    expectOk(await attach(gw1, { device: sub, address: '1' }));
    const moved = expectFailure(await attach(gw2, { device: sub, address: '1' }), 409);
    expect(moved.message).toMatch(/another gateway/);
    expectOk(await attach(gw1, { device: sub, address: '1' }));
    expectOk(await attach(gw1, { device: sub, address: '2' }));
    expect((await list(gw1)).items.map((i: { address: string }) => i.address)).toEqual(['2']);
    expect(expectOk(await p.api.post(`/api/v1/device/${gw1}/sub_devices_remove`, { devices: [sub] }))).toEqual({
      detached: [sub],
    });
    expectOk(await attach(gw2, { device: sub, address: '1' }));
    expect((await list(gw2)).items.map((i: { id: string }) => i.id)).toEqual([sub]);
  });
});

describe('listing and detaching', () => {
  it('lists by address, paged', async () => {
    const gw = await device('gateway');
    const ids: Record<string, string> = {};
    for (const address of ['c', 'a', 'b']) {
      ids[address] = await device('sub');
      expectOk(await attach(gw, { device: ids[address], address }));
    }
    const first = await list(gw, '?page_records=2');
    expect(first).toMatchObject({ total: 3, page_total: 2 });
    expect(first.items.map((i: { address: string }) => i.address)).toEqual(['a', 'b']);
    expect((await list(gw, '?page_records=2&page=2')).items.map((i: { id: string }) => i.id)).toEqual([ids.c]);
    expectFailure(await p.api.get(`/api/v1/device/${gw}/sub_devices?page_records=501`), 400);
  });

  it('detaches the named sub-devices and ignores ids that are not attached to this gateway', async () => {
    const gw = await device('gateway');
    const other = await device('gateway');
    const [a, b, c] = [await device('sub'), await device('sub'), await device('sub')];
    expectOk(await attach(gw, { device: a, address: 'a' }));
    expectOk(await attach(gw, { device: b, address: 'b' }));
    expectOk(await attach(other, { device: c, address: 'c' }));
    const res = expectOk(
      await p.api.post(`/api/v1/device/${gw}/sub_devices_remove`, { devices: [a, c, 'no-such-device', a] }),
    );
    expect(res).toEqual({ detached: [a] });
    expect((await list(gw)).items.map((i: { id: string }) => i.id)).toEqual([b]);
    expect((await list(other)).items.map((i: { id: string }) => i.id)).toEqual([c]);
    expectFailure(await p.api.post(`/api/v1/device/${gw}/sub_devices_remove`, { devices: [] }), 400);
    // The address is free again.
    expectOk(await attach(gw, { device: await device('sub'), address: 'a' }));
  });

  it('deleting a gateway frees its sub-devices; deleting a sub-device frees its address', async () => {
    const gw = await device('gateway');
    const [a, b] = [await device('sub'), await device('sub')];
    expectOk(await attach(gw, { device: a, address: '1' }));
    expectOk(await attach(gw, { device: b, address: '2' }));
    expectOk(await p.api.delete(`/api/v1/device/${b}`));
    expect((await list(gw)).items.map((i: { id: string }) => i.id)).toEqual([a]);
    expectOk(await p.api.delete(`/api/v1/device/${gw}`));
    const next = await device('gateway');
    expectOk(await attach(next, { device: a, address: '1' }));
  });
});

describe('access', () => {
  it('refuses customer tokens (403) on every gateway route', async () => {
    const gw = await device('gateway');
    const sub = await device('sub');
    expectOk(await p.api.post('/api/v1/customer', { name: 'Cid', account: 'cid', password: 'customer-password' }));
    const customerId = expectOk(await p.api.get('/api/v1/customers')).items[0].id;
    expectOk(await p.api.post(`/api/v1/customer/${customerId}/devices`, { devices: [gw, sub] }));
    const login = expectOk(
      await client(ctx.app).post('/api/v1/customer_login', {
        app_id: p.project.app.app_id,
        account: 'cid',
        password: 'customer-password',
      }),
    );
    const customer = client(ctx.app, login.access_token);
    expectFailure(await customer.post(`/api/v1/device/${gw}/sub_devices`, { device: sub, address: '1' }), 403);
    expectFailure(await customer.get(`/api/v1/device/${gw}/sub_devices`), 403);
    expectFailure(await customer.post(`/api/v1/device/${gw}/sub_devices_remove`, { devices: [sub] }), 403);
    expect((await list(gw)).items).toEqual([]);
  });

  it("answers 404 for another project's gateway or device, and changes nothing there", async () => {
    const other = await createProject(ctx, 'other');
    const otherGatewayType = expectOk(
      await other.api.post('/api/v1/device_type', { name: 'gateway', conn_type: '3' }),
    ).id;
    const otherSubType = expectOk(await other.api.post('/api/v1/device_type', { name: 'sensor', conn_type: '2' })).id;
    const theirGateway = await device(undefined, other, otherGatewayType);
    const theirSub = await device(undefined, other, otherSubType);
    expectOk(await attach(theirGateway, { device: theirSub, address: '1' }, other));
    const myGateway = await device('gateway');
    const mySub = await device('sub');
    expectFailure(await attach(myGateway, { device: theirSub, address: '2' }), 404);
    expectFailure(await attach(theirGateway, { device: mySub, address: '2' }), 404);
    expectFailure(await p.api.get(`/api/v1/device/${theirGateway}/sub_devices`), 404);
    expectFailure(await p.api.post(`/api/v1/device/${theirGateway}/sub_devices_remove`, { devices: [theirSub] }), 404);
    // Naming their sub-device from my own gateway detaches nothing there either.
    expect(
      expectOk(await p.api.post(`/api/v1/device/${myGateway}/sub_devices_remove`, { devices: [theirSub] })),
    ).toEqual({ detached: [] });
    expect(
      expectOk(await other.api.get(`/api/v1/device/${theirGateway}/sub_devices`)).items.map(
        (i: { id: string }) => i.id,
      ),
    ).toEqual([theirSub]);
  });
});

describe('OpenAPI', () => {
  it('documents the gateway routes with their bodies', async () => {
    const doc = (await ctx.app.inject({ method: 'GET', url: '/docs/json' })).json();
    const attachDoc = doc.paths['/api/v1/device/{id}/sub_devices'].post;
    expect(attachDoc.requestBody.content['application/json'].schema.required).toEqual(['device', 'address']);
    expect(doc.paths['/api/v1/device/{id}/sub_devices'].get).toBeDefined();
    expect(doc.paths['/api/v1/device/{id}/sub_devices_remove'].post).toBeDefined();
  });
});

describe('the sub-device list when the cluster cannot be asked (docs/cluster.md §5)', () => {
  it('answers with the online state presence last wrote instead of failing the whole list', async () => {
    const gw = await device('gateway');
    const sub = await device('sub');
    const other = await device('sub');
    expectOk(await attach(gw, { device: sub, address: '01' }));
    expectOk(await attach(gw, { device: other, address: '02' }));
    await ctx.database.db.execute(sql`update devices set online = true where id = ${sub}`);
    const sessions = ctx.services.sessions;
    const locate = sessions.locate;
    sessions.locate = () => Promise.reject(new Error('the cluster is unreachable (NATS is down)'));
    try {
      expect((await list(gw)).items.map((i: { id: string; online: boolean }) => [i.id, i.online])).toEqual([
        [sub, true],
        [other, false],
      ]);
    } finally {
      sessions.locate = locate;
    }
  });
});
