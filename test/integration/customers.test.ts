import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { rowsOf } from '../../src/db/client.ts';
import {
  client,
  createProject,
  createTestApp,
  expectFailure,
  expectOk,
  type Client,
  type ProjectFixture,
  type TestContext,
} from '../helpers/app.ts';
import { addDevice } from '../helpers/factories.ts';

let ctx: TestContext;
let p: ProjectFixture;
let seq = 0;

beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx);
});
afterAll(() => ctx?.close());

const PASSWORD = 'customer-pass-1';
const account = () => `user-${++seq}-${Math.random().toString(36).slice(2, 8)}`;

async function customer(api: Client, body: Record<string, unknown> = {}): Promise<{ id: string; account: string }> {
  const acc = (body.account as string | undefined) ?? account();
  const created = expectOk(
    await api.post('/api/v1/customer', { name: 'a customer', password: PASSWORD, ...body, account: acc }),
  );
  return { id: created.id as string, account: acc };
}
const device = async (api: Client, name: string): Promise<string> => (await addDevice(api, { name })).id;
async function login(fx: ProjectFixture, acc: string, password = PASSWORD) {
  return client(ctx.app).post('/api/v1/customer_login', { app_id: fx.project.app.app_id, account: acc, password });
}
async function customerClient(fx: ProjectFixture, acc: string): Promise<Client> {
  return client(ctx.app, expectOk(await login(fx, acc)).access_token as string);
}
const ids = (list: { items: { id: string }[] }) => list.items.map((d) => d.id).sort();

describe('customers', () => {
  it('creates a customer and reads it back with the documented fields, never the password', async () => {
    const acc = account();
    const created = expectOk(
      await p.api.post('/api/v1/customer', {
        name: 'Alice',
        account: acc,
        password: PASSWORD,
        descr: 'vip',
        email: 'alice@example.com',
        mobile: '+86 138',
        tags: { tier: 'gold' },
        locale: 'zh-CN',
      }),
    );
    expect(created).toEqual({ id: expect.any(String), name: 'Alice' });
    const c = expectOk(await p.api.get(`/api/v1/customer/${created.id}`));
    expect(c).toEqual({
      id: created.id,
      account: acc,
      name: 'Alice',
      descr: 'vip',
      email: 'alice@example.com',
      mobile: '+86 138',
      tags: { tier: 'gold' },
      locale: 'zh-CN',
      create_time: expect.any(Number),
      count: { device_count: 0 },
    });
    const raw = JSON.stringify(c) + JSON.stringify(expectOk(await p.api.get('/api/v1/customers')));
    expect(raw).not.toMatch(/argon2|password/i);
  });

  it('fills defaults for the optional fields', async () => {
    const { id } = await customer(p.api);
    expect(expectOk(await p.api.get(`/api/v1/customer/${id}`))).toMatchObject({
      descr: '',
      email: '',
      mobile: '',
      tags: {},
      locale: 'en',
    });
  });

  it('lists customers newest first with paging and device counts', async () => {
    const fx = await createProject(ctx, 'listing');
    const a = await customer(fx.api, { name: 'first' });
    const b = await customer(fx.api, { name: 'second' });
    const c = await customer(fx.api, { name: 'third' });
    const d1 = await device(fx.api, 'd1');
    const d2 = await device(fx.api, 'd2');
    expectOk(await fx.api.post(`/api/v1/customer/${b.id}/devices`, { devices: [d1, d2] }));
    expectOk(await fx.api.post(`/api/v1/customer/${a.id}/devices`, { devices: [d1] }));

    const page1 = expectOk(await fx.api.get('/api/v1/customers?page=1&page_records=2'));
    expect(page1.total).toBe(3);
    expect(page1.page_total).toBe(2);
    expect(page1.items.map((x: { id: string }) => x.id)).toEqual([c.id, b.id]);
    expect(page1.items.map((x: { count: { device_count: number } }) => x.count.device_count)).toEqual([0, 2]);
    const page2 = expectOk(await fx.api.get('/api/v1/customers?page=2&page_records=2'));
    expect(page2.items).toEqual([expect.objectContaining({ id: a.id, name: 'first', count: { device_count: 1 } })]);
    expect(expectOk(await fx.api.get('/api/v1/customers')).items).toHaveLength(3);
  });

  it('answers 409 for a duplicate account in the project but allows it in another project', async () => {
    const { account: acc } = await customer(p.api);
    const body = expectFailure(
      await p.api.post('/api/v1/customer', { name: 'dup', account: acc, password: PASSWORD }),
      409,
    );
    expect(body.message).toMatch(/account/);
    const other = await createProject(ctx, 'other accounts');
    expectOk(await other.api.post('/api/v1/customer', { name: 'same account', account: acc, password: PASSWORD }));
  });

  it('rejects invalid bodies with 400', async () => {
    const bad = [
      {},
      { name: 'x', account: account() },
      { name: 'x', account: account(), password: 'short' },
      { name: '', account: account(), password: PASSWORD },
      { name: 'x', account: ' ', password: PASSWORD },
      { name: 'x', account: account(), password: PASSWORD, email: 'not-an-email' },
      { name: 'x', account: account(), password: PASSWORD, locale: 'english please' },
      { name: 'x', account: account(), password: PASSWORD, tags: ['a'] },
      { name: 'x', account: 'a'.repeat(65), password: PASSWORD },
    ];
    for (const body of bad) expectFailure(await p.api.post('/api/v1/customer', body), 400);
    const { id } = await customer(p.api);
    expect(expectFailure(await p.api.put(`/api/v1/customer/${id}/info`, {}), 400).message).toMatch(/at least one/);
    expectFailure(await p.api.put(`/api/v1/customer/${id}/pwd`, { password: 'short' }), 400);
    expectFailure(await p.api.post(`/api/v1/customer/${id}/devices`, { devices: [] }), 400);
    expectFailure(await p.api.get('/api/v1/customers?page_records=501'), 400);
  });

  it('updates the info fields one by one and together', async () => {
    const { id } = await customer(p.api, { name: 'before', email: 'old@example.com' });
    expectOk(await p.api.put(`/api/v1/customer/${id}/info`, { name: 'after' }));
    expectOk(await p.api.put(`/api/v1/customer/${id}/info`, { descr: 'note', email: '', mobile: '123', locale: 'de' }));
    expect(expectOk(await p.api.get(`/api/v1/customer/${id}`))).toMatchObject({
      name: 'after',
      descr: 'note',
      email: '',
      mobile: '123',
      locale: 'de',
    });
  });

  it('merges tags and removes them by key', async () => {
    const { id } = await customer(p.api, { tags: { a: '1', b: '2' } });
    expectOk(await p.api.put(`/api/v1/customer/${id}/tags`, { tags: { b: 'two', c: '3' } }));
    expect(expectOk(await p.api.get(`/api/v1/customer/${id}`)).tags).toEqual({ a: '1', b: 'two', c: '3' });
    expectOk(await p.api.post(`/api/v1/customer/${id}/tags_remove`, { keys: ['a', 'missing'] }));
    expect(expectOk(await p.api.get(`/api/v1/customer/${id}`)).tags).toEqual({ b: 'two', c: '3' });
  });

  it('refuses a tag merge that would exceed 64 tags', async () => {
    const many = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`k${i}`, 'v']));
    const { id } = await customer(p.api, { tags: many });
    expectFailure(await p.api.put(`/api/v1/customer/${id}/tags`, { tags: { extra: 'v' } }), 400);
    expectOk(await p.api.put(`/api/v1/customer/${id}/tags`, { tags: { k0: 'changed' } }));
  });

  it('changes the password: the old one stops working, the new one logs in', async () => {
    const { id, account: acc } = await customer(p.api);
    expectOk(await login(p, acc));
    expectOk(await p.api.put(`/api/v1/customer/${id}/pwd`, { password: 'brand-new-pass' }));
    expectFailure(await login(p, acc), 401);
    expect(expectOk(await login(p, acc, 'brand-new-pass')).access_token).toEqual(expect.any(String));
  });

  it('deletes a customer: reads answer 404, their bindings go, their token answers 401', async () => {
    const { id, account: acc } = await customer(p.api);
    const d = await device(p.api, 'bound then orphaned');
    expectOk(await p.api.post(`/api/v1/customer/${id}/devices`, { devices: [d] }));
    const own = await customerClient(p, acc);
    expectOk(await own.get('/api/v1/devices'));
    expect(expectOk(await p.api.delete(`/api/v1/customer/${id}`))).toEqual({});
    expectFailure(await p.api.get(`/api/v1/customer/${id}`), 404);
    expectFailure(await p.api.delete(`/api/v1/customer/${id}`), 404);
    expectFailure(await own.get('/api/v1/devices'), 401);
    expectFailure(await login(p, acc), 401);
    const rows = await ctx.database.db.execute(
      sql`select count(*)::int as n from customer_devices where customer_id = ${id}`,
    );
    expect(rowsOf<{ n: number }>(rows)[0]?.n).toBe(0);
    expectOk(await p.api.get(`/api/v1/device/${d}`));
  });

  it("answers 404 for every call on another project's customer", async () => {
    const other = await createProject(ctx, 'other customers');
    const theirs = await customer(other.api);
    const d = await device(p.api, 'mine');
    const base = `/api/v1/customer/${theirs.id}`;
    expectFailure(await p.api.get(base), 404);
    expectFailure(await p.api.put(`${base}/info`, { name: 'x' }), 404);
    expectFailure(await p.api.put(`${base}/pwd`, { password: 'another-pass-1' }), 404);
    expectFailure(await p.api.put(`${base}/tags`, { tags: { a: 'b' } }), 404);
    expectFailure(await p.api.post(`${base}/tags_remove`, { keys: ['a'] }), 404);
    expectFailure(await p.api.post(`${base}/devices`, { devices: [d] }), 404);
    expectFailure(await p.api.post(`${base}/devices_remove`, { devices: [d] }), 404);
    expectFailure(await p.api.get(`${base}/devices`), 404);
    expectFailure(await p.api.delete(base), 404);
    expect(expectOk(await p.api.get('/api/v1/customers')).items.map((c: { id: string }) => c.id)).not.toContain(
      theirs.id,
    );
    expect(expectOk(await other.api.get(base)).name).toBe('a customer');
    expectOk(await login(other, theirs.account));
  });
});

describe('binding devices to customers', () => {
  it('binds devices, lists them like the device list, is idempotent and unbinds', async () => {
    const fx = await createProject(ctx, 'binding');
    const c = await customer(fx.api);
    const d1 = await device(fx.api, 'one');
    const d2 = await device(fx.api, 'two');
    const d3 = await device(fx.api, 'three');
    expect(expectOk(await fx.api.post(`/api/v1/customer/${c.id}/devices`, { devices: [d1, d2] }))).toEqual({});
    expectOk(await fx.api.post(`/api/v1/customer/${c.id}/devices`, { devices: [d2, d2, d1] }));
    expect(expectOk(await fx.api.get(`/api/v1/customer/${c.id}`)).count.device_count).toBe(2);

    const list = expectOk(await fx.api.get(`/api/v1/customer/${c.id}/devices`));
    expect(list.total).toBe(2);
    expect(list.page_total).toBe(1);
    expect(list.items.map((d: { id: string }) => d.id)).toEqual([d2, d1]);
    const fromDeviceList = expectOk(await fx.api.get('/api/v1/devices')).items.find((d: { id: string }) => d.id === d2);
    expect(list.items[0]).toEqual(fromDeviceList);
    const paged = expectOk(await fx.api.get(`/api/v1/customer/${c.id}/devices?page=2&page_records=1`));
    expect(paged).toMatchObject({ total: 2, page_total: 2, items: [expect.objectContaining({ id: d1 })] });

    expectOk(await fx.api.post(`/api/v1/customer/${c.id}/devices_remove`, { devices: [d1, d3] }));
    expect(ids(expectOk(await fx.api.get(`/api/v1/customer/${c.id}/devices`)))).toEqual([d2]);
    expect(expectOk(await fx.api.get(`/api/v1/customer/${c.id}`)).count.device_count).toBe(1);
  });

  it('answers 404 naming the ids that are not devices of the project, and binds none of them', async () => {
    const fx = await createProject(ctx, 'bad binding');
    const other = await createProject(ctx, 'foreign devices');
    const c = await customer(fx.api);
    const mine = await device(fx.api, 'mine');
    const foreign = await device(other.api, 'foreign');
    const body = expectFailure(
      await fx.api.post(`/api/v1/customer/${c.id}/devices`, { devices: [mine, foreign, 'nope'] }),
      404,
    );
    expect(body.message).toBe(`Device ${foreign}, nope not found`);
    expect(expectOk(await fx.api.get(`/api/v1/customer/${c.id}`)).count.device_count).toBe(0);
    expectFailure(await fx.api.post('/api/v1/customer/no-such-customer/devices', { devices: [mine] }), 404);
  });

  it('lets a device be bound to several customers and drops the binding when the device is deleted', async () => {
    const fx = await createProject(ctx, 'shared devices');
    const a = await customer(fx.api);
    const b = await customer(fx.api);
    const d = await device(fx.api, 'shared');
    expectOk(await fx.api.post(`/api/v1/customer/${a.id}/devices`, { devices: [d] }));
    expectOk(await fx.api.post(`/api/v1/customer/${b.id}/devices`, { devices: [d] }));
    expect(expectOk(await fx.api.get(`/api/v1/customer/${b.id}`)).count.device_count).toBe(1);
    expectOk(await fx.api.delete(`/api/v1/device/${d}`));
    expect(expectOk(await fx.api.get(`/api/v1/customer/${a.id}`)).count.device_count).toBe(0);
    expect(expectOk(await fx.api.get(`/api/v1/customer/${a.id}/devices`)).items).toEqual([]);
  });
});

describe('customer tokens', () => {
  it('see only their bound devices in the list, the reads and the statistics', async () => {
    const fx = await createProject(ctx, 'customer view');
    const c = await customer(fx.api);
    const bound1 = await device(fx.api, 'bound 1');
    const bound2 = await device(fx.api, 'bound 2');
    const unbound = await device(fx.api, 'not theirs');
    expectOk(await fx.api.post(`/api/v1/customer/${c.id}/devices`, { devices: [bound1, bound2] }));
    const own = await customerClient(fx, c.account);

    const list = expectOk(await own.get('/api/v1/devices'));
    expect(ids(list)).toEqual([bound1, bound2].sort());
    expect(list.total).toBe(2);
    expect(expectOk(await own.get(`/api/v1/device/${bound1}`)).id).toBe(bound1);
    expect(expectFailure(await own.get(`/api/v1/device/${unbound}`), 404).message).toBe('Device not found');
    expect(expectOk(await own.get('/api/v1/devices_stat'))).toMatchObject({ device_total: 2, offline_device_total: 2 });
    expect(expectOk(await fx.api.get('/api/v1/devices_stat')).device_total).toBe(3);

    expectOk(await fx.api.post(`/api/v1/customer/${c.id}/devices_remove`, { devices: [bound2] }));
    expect(ids(expectOk(await own.get('/api/v1/devices')))).toEqual([bound1]);
    expectFailure(await own.get(`/api/v1/device/${bound2}`), 404);
  });

  it('get 403 on manage routes', async () => {
    const fx = await createProject(ctx, 'customer forbidden');
    const c = await customer(fx.api);
    const d = await device(fx.api, 'bound');
    expectOk(await fx.api.post(`/api/v1/customer/${c.id}/devices`, { devices: [d] }));
    const own = await customerClient(fx, c.account);
    expectFailure(await own.post('/api/v1/device', { name: 'sneaky' }), 403);
    expectFailure(await own.delete(`/api/v1/device/${d}`), 403);
    expectFailure(await own.get('/api/v1/customers'), 403);
    expectFailure(await own.get(`/api/v1/customer/${c.id}`), 403);
    expectFailure(await own.post('/api/v1/customer', { name: 'x', account: account(), password: PASSWORD }), 403);
    expectFailure(await own.put(`/api/v1/customer/${c.id}/pwd`, { password: 'taken-over-1' }), 403);
    expectFailure(await own.post(`/api/v1/customer/${c.id}/devices`, { devices: [d] }), 403);
    expectFailure(await own.get(`/api/v1/customer/${c.id}/devices`), 403);
    expectFailure(await own.delete(`/api/v1/customer/${c.id}`), 403);
  });

  it('are refused by the routes of the administrator too', async () => {
    const fx = await createProject(ctx, 'customer admin');
    const c = await customer(fx.api);
    const own = await customerClient(fx, c.account);
    expectFailure(await own.get('/api/v1/admin'), 403);
  });
});
