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

/** `search` on the device lists (docs/http-api.md §3.4): name contains, any case, or device_key starts with. */
let ctx: TestContext;
let p: ProjectFixture;
let other: ProjectFixture;
const made: Record<string, string> = {};

beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx, 'search');
  other = await createProject(ctx, 'search other');
  const add = async (fx: ProjectFixture, label: string, name: string, deviceKey?: string) => {
    made[label] = expectOk(
      await fx.api.post('/api/v1/device', { name, ...(deviceKey ? { device_key: deviceKey } : {}) }),
    ).id as string;
  };
  await add(p, 'boiler', 'Boiler Room Sensor');
  await add(p, 'boiler2', 'basement BOILER');
  await add(p, 'pump', 'Pump', 'PMP-0001');
  await add(p, 'pumpKeyOnly', 'Fan', 'PMP-0002');
  await add(p, 'keyInside', 'Heater', 'X-PMP-9');
  await add(p, 'percent', '100% humidity');
  await add(p, 'hundred', '1000 humidity');
  await add(p, 'under', 'a_b sensor');
  await add(p, 'noUnder', 'axb sensor');
  await add(p, 'slash', 'c\\d valve');
  await add(other, 'otherBoiler', 'Boiler elsewhere', 'PMP-0001');
});
afterAll(() => ctx?.close());

async function found(api: ProjectFixture['api'], query: string): Promise<string[]> {
  const list = expectOk(await api.get(`/api/v1/devices?${query}`));
  return (list.items as { id: string }[]).map((d) => d.id).sort();
}
const ids = (...labels: string[]) => labels.map((l) => made[l]!).sort();
const q = (text: string) => `search=${encodeURIComponent(text)}`;

describe('device search', () => {
  it('matches names containing the text in any case, newest first, with the total', async () => {
    expect(await found(p.api, q('boiler'))).toEqual(ids('boiler', 'boiler2'));
    expect(await found(p.api, q('OOM sEN'))).toEqual(ids('boiler'));
    const list = expectOk(await p.api.get(`/api/v1/devices?${q('boiler')}`));
    expect(list.items.map((d: { id: string }) => d.id)).toEqual([made.boiler2, made.boiler]);
    expect(list.total).toBe(2);
  });

  it('matches device keys by prefix only', async () => {
    expect(await found(p.api, q('PMP-'))).toEqual(ids('pump', 'pumpKeyOnly'));
    expect(await found(p.api, q('PMP-0002'))).toEqual(ids('pumpKeyOnly'));
    // "-PMP" is inside X-PMP-9 but not at its start, and in no name.
    expect(await found(p.api, q('-PMP'))).toEqual([]);
  });

  it('takes %, _ and \\ literally', async () => {
    expect(await found(p.api, q('100%'))).toEqual(ids('percent'));
    expect(await found(p.api, q('%'))).toEqual(ids('percent'));
    expect(await found(p.api, q('a_b'))).toEqual(ids('under'));
    expect(await found(p.api, q('_'))).toEqual(ids('under'));
    expect(await found(p.api, q('c\\d'))).toEqual(ids('slash'));
    expect(await found(p.api, q('\\'))).toEqual(ids('slash'));
  });

  it('combines with the other filters and paging', async () => {
    const page1 = expectOk(await p.api.get(`/api/v1/devices?${q('humidity')}&page_records=1`));
    expect(page1).toMatchObject({ total: 2, page_total: 2 });
    expect(page1.items.map((d: { id: string }) => d.id)).toEqual([made.hundred]);
    const page2 = expectOk(await p.api.get(`/api/v1/devices?${q('humidity')}&page_records=1&page=2`));
    expect(page2.items.map((d: { id: string }) => d.id)).toEqual([made.percent]);
    expect(await found(p.api, `${q('PMP')}&device_key=PMP-0001`)).toEqual(ids('pump'));
    expect(await found(p.api, `${q('boiler')}&online=1`)).toEqual([]);
  });

  it("never matches another project's devices", async () => {
    expect(await found(other.api, q('boiler'))).toEqual(ids('otherBoiler'));
    expect(await found(other.api, q('PMP-'))).toEqual(ids('otherBoiler'));
    expect(await found(p.api, q('elsewhere'))).toEqual([]);
  });

  it("limits customer tokens and the customer's device list to the customer's devices", async () => {
    const account = `search-${Math.random().toString(36).slice(2, 8)}`;
    const cust = expectOk(await p.api.post('/api/v1/customer', { name: 'c', account, password: 'customer-pass-1' }))
      .id as string;
    expectOk(await p.api.post(`/api/v1/customer/${cust}/devices`, { devices: [made.boiler, made.pump] }));
    const token = expectOk(
      await client(ctx.app).post('/api/v1/customer_login', {
        app_id: p.project.app.app_id,
        account,
        password: 'customer-pass-1',
      }),
    ).access_token as string;
    const api = client(ctx.app, token);
    expect(await found(api, q('boiler'))).toEqual(ids('boiler'));
    expect(await found(api, q('PMP'))).toEqual(ids('pump'));
    const bound = expectOk(await p.api.get(`/api/v1/customer/${cust}/devices?${q('boiler')}`));
    expect(bound.items.map((d: { id: string }) => d.id)).toEqual([made.boiler]);
    expect(bound.total).toBe(1);
  });

  it('refuses an empty or over-long text with the 400 envelope', async () => {
    expectFailure(await p.api.get('/api/v1/devices?search='), 400);
    expectFailure(await p.api.get(`/api/v1/devices?${q('   ')}`), 400);
    expectFailure(await p.api.get(`/api/v1/devices?${q('x'.repeat(65))}`), 400);
    expect(await found(p.api, q('x'.repeat(64)))).toEqual([]);
    const account = `search-${Math.random().toString(36).slice(2, 8)}`;
    const cust = expectOk(await p.api.post('/api/v1/customer', { name: 'c', account, password: 'customer-pass-1' }))
      .id as string;
    expectFailure(await p.api.get(`/api/v1/customer/${cust}/devices?${q('x'.repeat(65))}`), 400);
  });
});
