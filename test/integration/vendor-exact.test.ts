import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeviceIdentity } from '../../src/domain/devices/device-identity.ts';
import {
  createProject,
  createTestApp,
  expectFailure,
  expectOk,
  type ProjectFixture,
  type TestContext,
} from '../helpers/app.ts';
import { addAuthenticatedDevice } from '../helpers/factories.ts';

// Where the vendor's own clients look: time windows, whole lists without paging, customer passwords.
let ctx: TestContext;
let p: ProjectFixture;

beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx);
});
afterAll(() => ctx?.close());

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

async function newDevice(f: ProjectFixture = p): Promise<{ id: string; identity: DeviceIdentity }> {
  const { id, identity } = await addAuthenticatedDevice(ctx, f, { name: 'dev' });
  return { id, identity };
}

describe('time windows of the attribute series (lone bounds)', () => {
  let id: string;
  let now: number;
  /** The reports' ages in days, newest first. */
  const AGES = [0.5, 3, 10, 29, 31, 45];

  beforeAll(async () => {
    const d = await newDevice();
    id = d.id;
    now = Date.now();
    await ctx.services.currentValues.reportSeries(
      d.identity,
      AGES.map((age) => ({ ts: Math.round(now - age * DAY), attributes: { t: age } })),
    );
  });
  const series = async (query: string) =>
    (
      expectOk(await p.api.get(`/api/v1/device/${id}/attribute/t/series?page_records=100${query}`)) as Array<{
        value: number;
      }>
    ).map((x) => x.value);

  it('start_time alone (even 0, even fractional): newest first from now down to it, within 30 days; other windows as documented', async () => {
    // Clients send start_time=0 to mean "everything": the last 30 days, not the 30 days after 1970.
    expect(await series('&start_time=0')).toEqual([0.5, 3, 10, 29]);
    expect(await series(`&start_time=${now - 5 * DAY + 0.25}`)).toEqual([0.5, 3]);
    // Paging goes back from now.
    expect(
      (
        expectOk(
          await p.api.get(`/api/v1/device/${id}/attribute/t/series?start_time=0&page=2&page_records=2`),
        ) as Array<{ value: number }>
      ).map((x) => x.value),
    ).toEqual([10, 29]);
    // A start in the future finds nothing (and is no error).
    expect(await series(`&start_time=${now + DAY}`)).toEqual([]);

    // No bounds: back from now, 30 days.
    expect(await series('')).toEqual([0.5, 3, 10, 29]);
    // end_time alone (fractional floored): back from it, 30 days.
    expect(await series(`&end_time=${now - 2 * DAY + 0.999}`)).toEqual([3, 10, 29, 31]);
    expect(await series(`&end_time=${now - 20 * DAY}`)).toEqual([29, 31, 45]);
    // Both: that range, at most 30 days.
    expect(await series(`&start_time=${now - 11 * DAY}.5&end_time=${now - DAY}.5`)).toEqual([3, 10]);
    expectFailure(await p.api.get(`/api/v1/device/${id}/attribute/t/series?start_time=0&end_time=${now}`), 400);
  });

  it('the same windows for aggregates and the CSV export', async () => {
    const agg = expectOk(
      await p.api.get(`/api/v1/device/${id}/attributes/aggregate?identifiers=t&fn=count&interval=1d&start_time=0.5`),
    );
    expect(agg.end_time).toBeGreaterThanOrEqual(now);
    expect(agg.end_time - agg.start_time).toBe(30 * DAY);
    const csv = await ctx.app.inject({
      method: 'GET',
      url: `/api/v1/device/${id}/attributes/export?identifiers=t&start_time=${now - 5 * DAY}.7`,
      headers: { authorization: `Bearer ${p.appToken}` },
    });
    expect(csv.statusCode).toBe(200);
    expect(
      csv.body
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => Number(l.split(',').at(-1))),
    ).toEqual([3, 0.5]);
  });
});

describe('time windows of custom-data messages', () => {
  it('start_time alone goes back from now, fractional times floored', async () => {
    const d = await newDevice();
    const now = Date.now();
    for (const age of [1, 40]) {
      expect(
        await ctx.services.dataStreams.upstream(d.identity, 'mqtt', 'raw', Buffer.from(`age ${age}`), now - age * DAY),
      ).toMatchObject({ recorded: true });
    }
    const page = expectOk(await p.api.get(`/api/v1/device/${d.id}/data/raw/messages?start_time=0.5`));
    expect(page.items.map((m: { data: string }) => m.data)).toEqual([Buffer.from('age 1').toString('hex')]);
    const ranged = expectOk(
      await p.api.get(`/api/v1/device/${d.id}/data/raw/messages?start_time=${now - 2 * DAY}.9&end_time=${now}.1`),
    );
    expect(ranged.total).toBe(1);
  });
});

describe('GET /api/v1/customers without paging parameters', () => {
  it('answers every customer (up to 10,000) when no paging parameter is sent; page and page_records still page', async () => {
    const f = await createProject(ctx, 'many customers');
    // Rows written directly: 10,001 customers through the API would cost 10,001 password hashes.
    await ctx.database.db.execute(sql`
      insert into customers (id, project_id, account, password_hash, name, create_time, update_time)
      select 'cu-' || lpad(n::text, 6, '0'), ${f.project.id}, 'acct' || n, 'x', 'customer ' || n, ${Date.now()}, ${Date.now()}
      from generate_series(1, 10001) as n`);
    const all = expectOk(await f.api.get('/api/v1/customers'));
    expect(all.items).toHaveLength(10_000);
    expect(all.total).toBe(10_001);
    // Newest (highest id) first; the one left out is the oldest.
    expect(all.items[0].id).toBe('cu-010001');
    expect(all.items.at(-1).id).toBe('cu-000002');
    expect(all.items[0]).toMatchObject({ account: 'acct10001', count: { device_count: 0 } });

    const page = expectOk(await f.api.get('/api/v1/customers?page=2&page_records=3'));
    expect(page.items.map((c: { id: string }) => c.id)).toEqual(['cu-009998', 'cu-009997', 'cu-009996']);
    expect(page).toMatchObject({ total: 10_001, page_total: 3334 });
    // Either parameter alone means paging, with the usual defaults.
    expect(expectOk(await f.api.get('/api/v1/customers?page=3')).items).toHaveLength(20);
    expect(expectOk(await f.api.get('/api/v1/customers?page_records=5')).items[4].id).toBe('cu-009997');
    expectFailure(await f.api.get('/api/v1/customers?page_records=501'), 400);
  });
});

describe('customer password minimum', () => {
  it('refuses passwords under 8 characters by default, with the envelope and a clear message', async () => {
    const f = await createProject(ctx, 'default minimum');
    const res = await f.api.post('/api/v1/customer', { name: 'c', account: 'short', password: 'abc1234' });
    expect(res.body).toEqual({
      result: false,
      errcode: 400,
      message: 'Invalid input: password: must be at least 8 characters',
      errors: [{ path: 'password', message: 'must be at least 8 characters' }],
    });
    const ok = expectOk(await f.api.post('/api/v1/customer', { name: 'c', account: 'long', password: 'abcd1234' }));
    expect(expectFailure(await f.api.put(`/api/v1/customer/${ok.id}/pwd`, { password: '123456' }), 400).message).toBe(
      'Invalid input: password: must be at least 8 characters',
    );
    expect(expectOk(await f.api.get('/api/v1/project/settings'))).toMatchObject({
      customer_password_min_length: null,
      effective: { customer_password_min_length: 8 },
    });
  });

  it('a project may lower it to 6 (not below) for migrated fleets; create, change and login then take 6 characters', async () => {
    const f = await createProject(ctx, 'migrated');
    const other = await createProject(ctx, 'untouched');
    expectFailure(await f.api.put('/api/v1/project/settings', { customer_password_min_length: 5 }), 400);
    expectFailure(await f.api.put('/api/v1/project/settings', { customer_password_min_length: 129 }), 400);
    expect(expectOk(await f.api.put('/api/v1/project/settings', { customer_password_min_length: 6 }))).toMatchObject({
      customer_password_min_length: 6,
      effective: { customer_password_min_length: 6 },
    });
    const cu = expectOk(
      await f.api.post('/api/v1/customer', { name: 'old user', account: 'legacy', password: '123456' }),
    );
    expect(
      expectOk(
        await f.api.post('/api/v1/customer_login', {
          app_id: f.project.app.app_id,
          account: 'legacy',
          password: '123456',
        }),
      ).access_token,
    ).toEqual(expect.any(String));
    expectOk(await f.api.put(`/api/v1/customer/${cu.id}/pwd`, { password: '654321' }));
    expect(expectFailure(await f.api.put(`/api/v1/customer/${cu.id}/pwd`, { password: '12345' }), 400).errors).toEqual([
      { path: 'password', message: 'must be at least 6 characters' },
    ]);
    // Another project keeps the default.
    expectFailure(await other.api.post('/api/v1/customer', { name: 'x', account: 'x', password: '123456' }), 400);
    // null returns to the default.
    expectOk(await f.api.put('/api/v1/project/settings', { customer_password_min_length: null }));
    expectFailure(await f.api.post('/api/v1/customer', { name: 'y', account: 'y', password: '1234567' }), 400);
    // Emails are validated as before.
    expectFailure(
      await f.api.post('/api/v1/customer', { name: 'z', account: 'z', password: 'abcd1234', email: 'not-an-email' }),
      400,
    );
  });
});
