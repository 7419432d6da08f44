import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createProject,
  createTestApp,
  expectFailure,
  expectOk,
  type ProjectFixture,
  type TestContext,
} from '../helpers/app.ts';
import { addDevice } from '../helpers/factories.ts';

let ctx: TestContext;
let p: ProjectFixture;

beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx);
});
afterAll(() => ctx?.close());

const newDevice = (f: ProjectFixture, body: Record<string, unknown> = {}) => addDevice(f.api, { name: 'dev', ...body });

describe('device create and read', () => {
  it('creates a device and reads it back with the documented fields', async () => {
    const created = await newDevice(p, {
      name: 'pump 1',
      descr: 'basement',
      tags: { floor: '-1' },
      device_key: 'chip-001',
    });
    expect(created).toEqual({ id: expect.any(String), name: 'pump 1' });
    const d = expectOk(await p.api.get(`/api/v1/device/${created.id}`));
    expect(d).toEqual({
      id: created.id,
      name: 'pump 1',
      descr: 'basement',
      device_key: 'chip-001',
      tags: { floor: '-1' },
      create_time: expect.any(Number),
      alarm: {},
      active: {},
      online: false,
      type: '',
      type_info: { id: '', name: '', conn_type: '1', conn_protocol: 'mqtt' },
      groups: [],
      view_token: expect.any(String),
      device_code: expect.any(String),
      gateway: null,
      disabled: false,
    });
    expect(Math.abs(d.create_time - Date.now())).toBeLessThan(60_000);
  });

  it('rejects a duplicate device_key with 409 and treats an empty key as none', async () => {
    await newDevice(p, { device_key: 'dup-key' });
    const body = expectFailure(await p.api.post('/api/v1/device', { name: 'b', device_key: 'dup-key' }), 409);
    expect(body.message).toMatch(/device_key/);
    const a = await newDevice(p, { device_key: '' });
    const b = await newDevice(p, { device_key: '' });
    expect(expectOk(await p.api.get(`/api/v1/device/${a.id}`)).device_key).toBe('');
    expect(expectOk(await p.api.get(`/api/v1/device/${b.id}`)).device_key).toBe('');
  });

  it('answers 404 for an unknown device type and a device of another project', async () => {
    expectFailure(await p.api.post('/api/v1/device', { name: 'x', type: 'no-such-type' }), 404);
    const other = await createProject(ctx, 'other');
    const foreign = await newDevice(other);
    expectFailure(await p.api.get(`/api/v1/device/${foreign.id}`), 404);
    expectFailure(await p.api.delete(`/api/v1/device/${foreign.id}`), 404);
    expectOk(await other.api.get(`/api/v1/device/${foreign.id}`));
  });

  it('refuses to create devices beyond the project quota with 422', async () => {
    const project = await ctx.services.projects.create({ name: 'small', device_quota: 1 });
    const login = expectOk(
      await ctx.app
        .inject({ method: 'POST', url: '/api/v1/access_token', payload: project.app })
        .then((r) => ({ status: r.statusCode, body: r.json(), headers: r.headers })),
    );
    const token = login.access_token as string;
    const post = (name: string) =>
      ctx.app
        .inject({
          method: 'POST',
          url: '/api/v1/device',
          headers: { authorization: `Bearer ${token}` },
          payload: { name },
        })
        .then((r) => ({ status: r.statusCode, body: r.json(), headers: r.headers }));
    expectOk(await post('one'));
    expect(expectFailure(await post('two'), 422).message).toMatch(/quota/);
  });
});

describe('device list', () => {
  let f: ProjectFixture;
  let ids: string[];
  beforeAll(async () => {
    f = await createProject(ctx, 'list');
    ids = [];
    for (let i = 0; i < 25; i++) ids.push((await newDevice(f, { name: `d${i}` })).id);
  });

  it('pages newest first with total and page_total', async () => {
    const page1 = expectOk(await f.api.get('/api/v1/devices'));
    expect(page1.total).toBe(25);
    expect(page1.page_total).toBe(2);
    expect(page1.items).toHaveLength(20);
    expect(page1.items[0].id).toBe(ids[24]);
    const page2 = expectOk(await f.api.get('/api/v1/devices?page=2'));
    expect(page2.items.map((d: { id: string }) => d.id)).toEqual(ids.slice(0, 5).reverse());
    const small = expectOk(await f.api.get('/api/v1/devices?page=3&page_records=10'));
    expect(small.items).toHaveLength(5);
    expect(small.page_total).toBe(3);
    expect(expectOk(await f.api.get('/api/v1/devices?page=9')).items).toEqual([]);
  });

  it('pages by key with after=<id>: every device once, newest first, a device created meanwhile not seen twice', async () => {
    const w = await createProject(ctx, 'walk');
    const made: string[] = [];
    for (let i = 0; i < 9; i++) made.push((await newDevice(w, { name: `w${i}` })).id);
    const seen: string[] = [];
    let after: string | undefined;
    for (let round = 0; round < 10; round++) {
      const page = expectOk(await w.api.get(`/api/v1/devices?page_records=4${after ? `&after=${after}` : ''}`));
      seen.push(...page.items.map((d: { id: string }) => d.id));
      // A device created during the walk is newer than every page: not seen, and nothing seen twice.
      if (round === 0) await newDevice(w, { name: 'created while walking' });
      expect(page.total).toBe(round === 0 ? 9 : 10);
      expect(page.page_total).toBe(round === 0 ? 3 : 3);
      if (page.items.length < 4) break;
      after = page.items.at(-1).id;
    }
    expect(seen).toEqual([...made].reverse());
    // Filters combine with it.
    const offline = expectOk(await w.api.get(`/api/v1/devices?online=0&after=${made[3]}`));
    expect(offline.items.map((d: { id: string }) => d.id)).toEqual(made.slice(0, 3).reverse());
    // Another project's id is only a bound: the list stays this project's.
    const bound = expectOk(await f.api.get(`/api/v1/devices?page_records=500&after=${made[8]}`));
    expect(bound.items.every((d: { id: string }) => ids.includes(d.id))).toBe(true);
    expectFailure(await w.api.get(`/api/v1/devices?page=2&after=${made[3]}`), 400);
    expectFailure(await w.api.get(`/api/v1/devices?after=${'x'.repeat(65)}`), 400);
  });

  it('accepts page_records up to 500 and rejects more', async () => {
    expect(expectOk(await f.api.get('/api/v1/devices?page_records=500')).items).toHaveLength(25);
    const body = expectFailure(await f.api.get('/api/v1/devices?page_records=501'), 400);
    expect(body.errors[0].path).toBe('query.page_records');
    expectFailure(await f.api.get('/api/v1/devices?page=0'), 400);
    // A page whose offset would overflow the database's bigint is refused, not a 500.
    expectFailure(await f.api.get('/api/v1/devices?page=100000000000000000000'), 400);
    expectFailure(await f.api.get('/api/v1/alarm_logs?page=100000000000000000000'), 400);
    expectFailure(await f.api.get('/api/v1/devices?page=abc'), 400);
  });

  it('filters by device_key and online state', async () => {
    const keyed = await newDevice(f, { device_key: 'imei-42' });
    const found = expectOk(await f.api.get('/api/v1/devices?device_key=imei-42'));
    expect(found.items.map((d: { id: string }) => d.id)).toEqual([keyed.id]);
    await ctx.database.db.execute(sql`update devices set online = true where id = ${keyed.id}`);
    const online = expectOk(await f.api.get('/api/v1/devices?online=1'));
    expect(online.items.map((d: { id: string }) => d.id)).toEqual([keyed.id]);
    expect(expectOk(await f.api.get('/api/v1/devices?online=0')).total).toBe(25);
  });

  it('answers 404 when filtering by a group of another project', async () => {
    const other = await createProject(ctx, 'other groups');
    const now = Date.now();
    const groupId = `g${now.toString(16)}`;
    await ctx.database.db.execute(sql`insert into device_groups (id, project_id, name, create_time, update_time)
      values (${groupId}, ${other.project.id}, 'theirs', ${now}, ${now})`);
    expectFailure(await f.api.get(`/api/v1/devices?group=${groupId}`), 404);
    expectFailure(await f.api.get(`/api/v1/devices?groups=${groupId},x`), 404);
    expectFailure(await f.api.put(`/api/v1/device/${ids[0]}/groups`, { groups: [groupId] }), 404);
    expect(expectOk(await other.api.get(`/api/v1/devices?group=${groupId}`)).total).toBe(0);
  });
});

describe('device updates', () => {
  it('updates name, descr and device_key, and removes the key with ""', async () => {
    const d = await newDevice(p, { device_key: 'k-upd' });
    expectOk(await p.api.put(`/api/v1/device/${d.id}/info`, { name: 'renamed', descr: 'new descr' }));
    let read = expectOk(await p.api.get(`/api/v1/device/${d.id}`));
    expect([read.name, read.descr, read.device_key]).toEqual(['renamed', 'new descr', 'k-upd']);
    expectOk(await p.api.put(`/api/v1/device/${d.id}/info`, { device_key: '' }));
    read = expectOk(await p.api.get(`/api/v1/device/${d.id}`));
    expect(read.device_key).toBe('');
    expectFailure(await p.api.put(`/api/v1/device/${d.id}/info`, {}), 400);
  });

  it('answers 409 when renaming the key to one in use', async () => {
    await newDevice(p, { device_key: 'taken-key' });
    const d = await newDevice(p);
    expectFailure(await p.api.put(`/api/v1/device/${d.id}/info`, { device_key: 'taken-key' }), 409);
  });

  it('names device_key in the 409 of a rename to a key in use (the repository names the unique key)', async () => {
    await newDevice(p, { device_key: 'named-key' });
    const d = await newDevice(p);
    const body = expectFailure(await p.api.put(`/api/v1/device/${d.id}/info`, { device_key: 'named-key' }), 409);
    expect(body.errors).toEqual([{ path: 'device_key', message: 'already exists' }]);
  });

  it('merges tags and removes them by key', async () => {
    const d = await newDevice(p, { tags: { a: '1', b: '2' } });
    expectOk(await p.api.put(`/api/v1/device/${d.id}/tags`, { tags: { b: '3', c: '4' } }));
    expect(expectOk(await p.api.get(`/api/v1/device/${d.id}`)).tags).toEqual({ a: '1', b: '3', c: '4' });
    expectOk(await p.api.post(`/api/v1/device/${d.id}/tags_remove`, { keys: ['a', 'c', 'missing'] }));
    expect(expectOk(await p.api.get(`/api/v1/device/${d.id}`)).tags).toEqual({ b: '3' });
  });

  it('refuses tags that are not strings and more than 64 tags in total', async () => {
    const d = await newDevice(p);
    expectFailure(await p.api.put(`/api/v1/device/${d.id}/tags`, { tags: { a: 1 } }), 400);
    const many = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, 'v']));
    const more = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`m${i}`, 'v']));
    expectOk(await p.api.put(`/api/v1/device/${d.id}/tags`, { tags: many }));
    expectFailure(await p.api.put(`/api/v1/device/${d.id}/tags`, { tags: more }), 400);
    expect(Object.keys(expectOk(await p.api.get(`/api/v1/device/${d.id}`)).tags)).toHaveLength(40);
  });

  it('deletes a device', async () => {
    const d = await newDevice(p);
    expectOk(await p.api.delete(`/api/v1/device/${d.id}`));
    expectFailure(await p.api.get(`/api/v1/device/${d.id}`), 404);
    expectFailure(await p.api.delete(`/api/v1/device/${d.id}`), 404);
  });
});

describe('device certificate', () => {
  it('returns the access token and project key, and a reset replaces the token', async () => {
    const d = await newDevice(p);
    const cert = expectOk(await p.api.get(`/api/v1/device/${d.id}/certificate`));
    expect(cert).toEqual({
      id: d.id,
      name: 'dev',
      access_token: expect.any(String),
      project_key: p.project.project_key,
    });
    const reset = expectOk(await p.api.post(`/api/v1/device/${d.id}/certificate/reset`));
    expect(reset.access_token).not.toBe(cert.access_token);
    expect(expectOk(await p.api.get(`/api/v1/device/${d.id}/certificate`)).access_token).toBe(reset.access_token);
  });
});

describe('device stats', () => {
  it('counts online, active and alarm states from the device columns', async () => {
    const f = await createProject(ctx, 'stats');
    const ids = [];
    for (let i = 0; i < 6; i++) ids.push((await newDevice(f)).id);
    const set = (id: string, online: boolean, active: boolean, level: number) =>
      ctx.database.db.execute(
        sql`update devices set online = ${online}, active = ${active}, alarm_level = ${level} where id = ${id}`,
      );
    await set(ids[0]!, true, true, 0);
    await set(ids[1]!, true, true, 1);
    await set(ids[2]!, false, true, 2);
    await set(ids[3]!, false, true, 3);
    await set(ids[4]!, false, true, 3);
    expect(expectOk(await f.api.get('/api/v1/devices_stat'))).toEqual({
      device_total: 6,
      online_device_total: 2,
      offline_device_total: 4,
      active_device_total: 5,
      inactive_device_total: 1,
      alarm_device_total: 4,
    });
    expect(expectOk(await f.api.get('/api/v1/devices_alarm_stat'))).toEqual({
      device_total: 6,
      alarm_1_total: 1,
      alarm_2_total: 1,
      alarm_3_total: 2,
      normal_total: 2,
    });
  });
});

describe('device extended information', () => {
  it('lists the standard infos of an untyped device and merges standard info updates', async () => {
    const d = await newDevice(p);
    const list = expectOk(await p.api.get(`/api/v1/device/${d.id}/extend_infos`));
    expect(list.items.map((i: { id: string }) => i.id)).toEqual(['location', 'contact']);
    expect(list.items[0]).toMatchObject({ info_type: 'location', is_standard: true, value: {} });
    const first = expectOk(
      await p.api.post(`/api/v1/device/${d.id}/standard_infos`, {
        info_type: 'location',
        value: { latitude: 31.2, longitude: 121.5 },
      }),
    );
    expect(first).toEqual({ location: { latitude: 31.2, longitude: 121.5 } });
    const second = expectOk(
      await p.api.post(`/api/v1/device/${d.id}/standard_infos`, {
        info_type: 'location',
        value: { address: 'Pier 3' },
      }),
    );
    expect(second).toEqual({ location: { latitude: 31.2, longitude: 121.5, address: 'Pier 3' } });
    const after = expectOk(await p.api.get(`/api/v1/device/${d.id}/extend_infos`));
    expect(after.items[0].value).toEqual({ latitude: 31.2, longitude: 121.5, address: 'Pier 3' });
  });

  it('rejects unknown standard types, unknown fields and out-of-range values', async () => {
    const d = await newDevice(p);
    expectFailure(
      await p.api.post(`/api/v1/device/${d.id}/standard_infos`, { info_type: 'weather', value: { a: 1 } }),
      400,
    );
    expectFailure(
      await p.api.post(`/api/v1/device/${d.id}/standard_infos`, { info_type: 'location', value: { altitude: 1 } }),
      400,
    );
    const bad = expectFailure(
      await p.api.post(`/api/v1/device/${d.id}/standard_infos`, { info_type: 'location', value: { latitude: 91 } }),
      400,
    );
    expect(bad.errors[0].path).toBe('value.latitude');
  });

  it("validates custom infos against the type's definitions", async () => {
    const now = Date.now();
    const typeId = `t${now.toString(16)}`;
    await ctx.database.db
      .execute(sql`insert into device_types (id, project_id, name, type_key, create_time, update_time)
      values (${typeId}, ${p.project.id}, 'meter', ${'tk' + now}, ${now}, ${now})`);
    await ctx.database.db
      .execute(sql`insert into extend_info_defs (id, project_id, device_type_id, info_type, name, options, create_time, update_time) values
      (${'a-serial' + now}, ${p.project.id}, ${typeId}, 'text', 'Serial', '{"max_length": 8}'::jsonb, ${now}, ${now}),
      (${'b-phase' + now}, ${p.project.id}, ${typeId}, 'enum', 'Phase', '{"choices": ["A","B","C"]}'::jsonb, ${now}, ${now})`);
    const d = await newDevice(p, { type: typeId });
    const set = expectOk(
      await p.api.post(`/api/v1/device/${d.id}/extend_infos`, {
        infos: { ['a-serial' + now]: 'SN-1', ['b-phase' + now]: 'B' },
      }),
    );
    expect(set).toEqual({ ['a-serial' + now]: 'SN-1', ['b-phase' + now]: 'B' });
    const list = expectOk(await p.api.get(`/api/v1/device/${d.id}/extend_infos`));
    expect(
      list.items
        .slice(2)
        .map((i: { name: string; value: unknown; is_standard: boolean }) => [i.name, i.value, i.is_standard]),
    ).toEqual([
      ['Serial', 'SN-1', false],
      ['Phase', 'B', false],
    ]);
    expectFailure(await p.api.post(`/api/v1/device/${d.id}/extend_infos`, { infos: { ['b-phase' + now]: 'D' } }), 400);
    expectFailure(
      await p.api.post(`/api/v1/device/${d.id}/extend_infos`, { infos: { ['a-serial' + now]: 'TOO-LONG-SERIAL' } }),
      400,
    );
    expectFailure(await p.api.post(`/api/v1/device/${d.id}/extend_infos`, { infos: { unknown: 'x' } }), 400);
    // nothing of a rejected batch is written
    expectFailure(
      await p.api.post(`/api/v1/device/${d.id}/extend_infos`, {
        infos: { ['a-serial' + now]: 'SN-2', ['b-phase' + now]: 'Z' },
      }),
      400,
    );
    expect(expectOk(await p.api.get(`/api/v1/device/${d.id}/extend_infos`)).items[2].value).toBe('SN-1');
  });
});
