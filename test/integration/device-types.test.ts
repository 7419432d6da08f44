import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deviceInfos, deviceTypes } from '../../src/db/schema/index.ts';
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
import { addCustomerClient, addDevice, addDeviceType } from '../helpers/factories.ts';

let ctx: TestContext;
let p: ProjectFixture;
let other: ProjectFixture;

beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx, 'types project');
  other = await createProject(ctx, 'other project');
});
afterAll(() => ctx?.close());

const createType = (api: Client, body: Record<string, unknown> = {}) => addDeviceType(api, { name: 'sensor', ...body });
const createDevice = (api: Client, type: string, name = 'device') => addDevice(api, { name, type });

/** A customer of the project, logged in through customer_login, bound to the given devices. */
const customerClient = (fx: ProjectFixture, deviceIds: string[]) => addCustomerClient(ctx, fx, deviceIds);

describe('device types', () => {
  it('creates a type with defaults and reads it back field for field', async () => {
    const before = Date.now();
    const created = await createType(p.api, { name: 'thermometer' });
    expect(created).toEqual({
      id: expect.any(String),
      name: 'thermometer',
      type_key: expect.stringMatching(/^[A-Za-z0-9]{24}$/),
    });
    const t = expectOk(await p.api.get(`/api/v1/device_type/${created.id}`));
    expect(t).toEqual({
      id: created.id,
      name: 'thermometer',
      descr: '',
      tags: {},
      type_key: created.type_key,
      conn_type: '1',
      conn_protocol: 'mqtt',
      allow_auto_create: false,
      tcp_heartbeat: null,
      tcp_frame_gap_ms: null,
      create_time: expect.any(Number),
      update_time: t.create_time,
      device_count: 0,
    });
    expect(t.create_time).toBeGreaterThanOrEqual(before);
  });

  it('stores every field given on create', async () => {
    const created = await createType(p.admin, {
      name: 'gateway',
      descr: 'edge box',
      tags: { site: 'north' },
      conn_type: '3',
      conn_protocol: 'tcp',
      allow_auto_create: true,
    });
    const t = expectOk(await p.api.get(`/api/v1/device_type/${created.id}`));
    expect(t).toMatchObject({
      name: 'gateway',
      descr: 'edge box',
      tags: { site: 'north' },
      conn_type: '3',
      conn_protocol: 'tcp',
      allow_auto_create: true,
    });
  });

  it('accepts conn_type as a number', async () => {
    const created = await createType(p.api, { conn_type: 2 });
    expect(expectOk(await p.api.get(`/api/v1/device_type/${created.id}`)).conn_type).toBe('2');
  });

  it('gives every type its own type key', async () => {
    const a = await createType(p.api);
    const b = await createType(p.api);
    expect(a.type_key).not.toBe(b.type_key);
  });

  it('rejects bad create bodies with 400', async () => {
    expectFailure(await p.api.post('/api/v1/device_type', {}), 400);
    expectFailure(await p.api.post('/api/v1/device_type', { name: '  ' }), 400);
    expectFailure(await p.api.post('/api/v1/device_type', { name: 'x', conn_type: '4' }), 400);
    expectFailure(await p.api.post('/api/v1/device_type', { name: 'x', conn_protocol: 'coap' }), 400);
    expectFailure(await p.api.post('/api/v1/device_type', { name: 'x', allow_auto_create: 'yes' }), 400);
    expectFailure(await p.api.post('/api/v1/device_type', { name: 'x'.repeat(129) }), 400);
    const body = expectFailure(await p.api.post('/api/v1/device_type', { name: 'x', tags: { a: 1 } }), 400);
    expect(body.errors[0].path).toMatch(/^tags/);
  });

  it('lists types newest first with the documented fields', async () => {
    const fx = await createProject(ctx, 'list order');
    const a = await createType(fx.api, { name: 'a' });
    const b = await createType(fx.api, { name: 'b' });
    const c = await createType(fx.api, { name: 'c' });
    // Distinct creation times, not in creation order, so the list must sort by create_time.
    await ctx.database.db.update(deviceTypes).set({ createTime: 1_000 }).where(eq(deviceTypes.id, a.id));
    await ctx.database.db.update(deviceTypes).set({ createTime: 3_000 }).where(eq(deviceTypes.id, b.id));
    await ctx.database.db.update(deviceTypes).set({ createTime: 2_000 }).where(eq(deviceTypes.id, c.id));
    const list = expectOk(await fx.api.get('/api/v1/device_types'));
    expect(list.items.map((t: { id: string }) => t.id)).toEqual([b.id, c.id, a.id]);
    expect(list.items[0]).toEqual({
      id: b.id,
      name: 'b',
      descr: '',
      tags: {},
      create_time: 3_000,
      device_count: 0,
      conn_protocol: 'mqtt',
      conn_type: '1',
      type_key: b.type_key,
      allow_auto_create: false,
    });
  });

  it('counts the devices of each type in the list and the single read', async () => {
    const fx = await createProject(ctx, 'counts');
    const busy = await createType(fx.api, { name: 'busy' });
    const idle = await createType(fx.api, { name: 'idle' });
    const one = await createType(fx.api, { name: 'one' });
    for (let i = 0; i < 3; i++) await createDevice(fx.api, busy.id, `busy ${i}`);
    await createDevice(fx.api, one.id);
    expectOk(await fx.api.post('/api/v1/device', { name: 'untyped' }));
    // Devices of another project's type with the same shape do not count here.
    await createDevice(other.api, (await createType(other.api)).id);

    const list = expectOk(await fx.api.get('/api/v1/device_types'));
    const counts = Object.fromEntries(
      list.items.map((t: { name: string; device_count: number }) => [t.name, t.device_count]),
    );
    expect(counts).toEqual({ busy: 3, idle: 0, one: 1 });
    expect(expectOk(await fx.api.get(`/api/v1/device_type/${busy.id}`)).device_count).toBe(3);
    expect(expectOk(await fx.api.get(`/api/v1/device_type/${idle.id}`)).device_count).toBe(0);
  });

  it('updates only the fields given and answers the whole type', async () => {
    const created = await createType(p.api, { name: 'old', descr: 'keep me', tags: { a: '1' } });
    const updated = expectOk(
      await p.api.put(`/api/v1/device_type/${created.id}`, {
        name: 'new',
        conn_protocol: 'http',
        allow_auto_create: true,
        tags: { b: '2' },
      }),
    );
    expect(updated).toMatchObject({
      id: created.id,
      name: 'new',
      descr: 'keep me',
      tags: { b: '2' },
      type_key: created.type_key,
      conn_type: '1',
      conn_protocol: 'http',
      allow_auto_create: true,
      device_count: 0,
    });
    expect(updated.update_time).toBeGreaterThanOrEqual(updated.create_time);
    expect(expectOk(await p.api.get(`/api/v1/device_type/${created.id}`))).toEqual(updated);
  });

  it('rejects an update with no field or a bad field with 400', async () => {
    const created = await createType(p.api);
    expectFailure(await p.api.put(`/api/v1/device_type/${created.id}`, {}), 400);
    expectFailure(await p.api.put(`/api/v1/device_type/${created.id}`, { conn_type: 'gateway' }), 400);
  });

  it('answers 422 when deleting a type that devices use, and deletes it once they are gone', async () => {
    const created = await createType(p.api);
    const devs = [];
    for (let i = 0; i < 3; i++) devs.push(await createDevice(p.api, created.id, `d${i}`));
    const body = expectFailure(await p.api.delete(`/api/v1/device_type/${created.id}`), 422);
    expect(body.message).toBe('Device type is used by 3 devices');
    for (const d of devs.slice(1)) expectOk(await p.api.delete(`/api/v1/device/${d.id}`));
    expect(expectFailure(await p.api.delete(`/api/v1/device_type/${created.id}`), 422).message).toBe(
      'Device type is used by 1 device',
    );
    expectOk(await p.api.delete(`/api/v1/device/${devs[0]!.id}`));
    expect(expectOk(await p.api.delete(`/api/v1/device_type/${created.id}`))).toEqual({});
    expectFailure(await p.api.get(`/api/v1/device_type/${created.id}`), 404);
    expectFailure(await p.api.delete(`/api/v1/device_type/${created.id}`), 404);
  });

  it('deletes the models, streams and info definitions of a deleted type', async () => {
    const created = await createType(p.api);
    expectOk(
      await p.api.post(`/api/v1/device_type/${created.id}/attribute`, {
        identifier: 'temp',
        name: 'T',
        data_type: 'number',
      }),
    );
    expectOk(await p.api.post(`/api/v1/device_type/${created.id}/data_stream`, { identifier: 'raw', format: 'hex' }));
    const info = expectOk(
      await p.api.post(`/api/v1/device_type/${created.id}/extend_info`, { info_type: 'text', name: 'serial' }),
    );
    expectOk(await p.api.delete(`/api/v1/device_type/${created.id}`));
    const again = await createType(p.api);
    expect(expectOk(await p.api.get(`/api/v1/device_type/${again.id}/attributes`)).items).toEqual([]);
    expect(await ctx.services.deviceTypes.attributeModels(p.project.id, created.id)).toEqual([]);
    expectFailure(await p.api.put(`/api/v1/device_type/${created.id}/extend_info/${info.id}`, { name: 'x' }), 404);
  });

  it('issues a new type key on reset', async () => {
    const created = await createType(p.api);
    const reset = expectOk(await p.api.post(`/api/v1/device_type/${created.id}/type_key_reset`));
    expect(reset).toEqual({ type_key: expect.stringMatching(/^[A-Za-z0-9]{24}$/) });
    expect(reset.type_key).not.toBe(created.type_key);
    expect(expectOk(await p.api.get(`/api/v1/device_type/${created.id}`)).type_key).toBe(reset.type_key);
    const [row] = await ctx.database.db.select().from(deviceTypes).where(eq(deviceTypes.typeKey, created.type_key));
    expect(row).toBeUndefined();
  });

  it("answers 404 for another project's type on every type call", async () => {
    const foreign = await createType(other.api);
    const base = `/api/v1/device_type/${foreign.id}`;
    expectFailure(await p.api.get(base), 404);
    expectFailure(await p.api.put(base, { name: 'mine' }), 404);
    expectFailure(await p.api.delete(base), 404);
    expectFailure(await p.api.post(`${base}/type_key_reset`), 404);
    expectFailure(await p.api.get(`${base}/attributes`), 404);
    expectFailure(await p.api.post(`${base}/attribute`, { identifier: 'x', name: 'x', data_type: 'number' }), 404);
    expectFailure(await p.api.get(`${base}/data_streams`), 404);
    expectFailure(await p.api.post(`${base}/data_stream`, { identifier: 'x', format: 'text' }), 404);
    expectFailure(await p.api.get(`${base}/extend_infos`), 404);
    expectFailure(await p.api.post(`${base}/extend_info`, { info_type: 'text', name: 'x' }), 404);
    expect(expectOk(await p.api.get('/api/v1/device_types')).items.map((t: { id: string }) => t.id)).not.toContain(
      foreign.id,
    );
    // Untouched in its own project.
    expect(expectOk(await other.api.get(base))).toMatchObject({ name: 'sensor', type_key: foreign.type_key });
  });

  it("answers 404 for another project's attribute models, streams and info definitions", async () => {
    const foreign = await createType(other.api);
    const base = `/api/v1/device_type/${foreign.id}`;
    expectOk(await other.api.post(`${base}/attribute`, { identifier: 'temp', name: 'T', data_type: 'number' }));
    expectOk(await other.api.post(`${base}/data_stream`, { identifier: 'raw', format: 'hex' }));
    const info = expectOk(await other.api.post(`${base}/extend_info`, { info_type: 'text', name: 'serial' }));
    expectFailure(await p.api.put(`${base}/attribute/temp`, { name: 'x' }), 404);
    expectFailure(await p.api.delete(`${base}/attribute/temp`), 404);
    expectFailure(await p.api.put(`${base}/data_stream/raw`, { name: 'x' }), 404);
    expectFailure(await p.api.delete(`${base}/data_stream/raw`), 404);
    expectFailure(await p.api.put(`${base}/extend_info/${info.id}`, { name: 'x' }), 404);
    expectFailure(await p.api.delete(`${base}/extend_info/${info.id}`), 404);
    // Nor through a type of one's own project.
    const mine = await createType(p.api);
    expectFailure(await p.api.put(`/api/v1/device_type/${mine.id}/extend_info/${info.id}`, { name: 'x' }), 404);
    expectFailure(await p.api.delete(`/api/v1/device_type/${mine.id}/extend_info/${info.id}`), 404);
    expect(expectOk(await other.api.get(`${base}/attributes`)).items[0].name).toBe('T');
    expect(expectOk(await other.api.get(`${base}/data_streams`)).items).toHaveLength(1);
    expect(expectOk(await other.api.get(`${base}/extend_infos`)).items.at(-1).name).toBe('serial');
  });

  it('answers 404 for an unknown type id', async () => {
    expectFailure(await p.api.get('/api/v1/device_type/000000000000000000000000'), 404);
    expectFailure(await p.api.get('/api/v1/device_type/000000000000000000000000/attributes'), 404);
  });

  it('refuses management calls to a customer token with 403 and narrows counts to its devices', async () => {
    const fx = await createProject(ctx, 'customer view');
    const t = await createType(fx.api);
    const d1 = await createDevice(fx.api, t.id, 'bound');
    await createDevice(fx.api, t.id, 'not bound');
    const customer = await customerClient(fx, [d1.id]);

    const list = expectOk(await customer.get('/api/v1/device_types'));
    expect(list.items).toEqual([expect.objectContaining({ id: t.id, device_count: 1, type_key: '' })]);
    expect(expectOk(await customer.get(`/api/v1/device_type/${t.id}`))).toMatchObject({
      device_count: 1,
      type_key: '',
    });
    expect(expectOk(await fx.api.get(`/api/v1/device_type/${t.id}`)).device_count).toBe(2);
    expectOk(await customer.get(`/api/v1/device_type/${t.id}/attributes`));
    expectOk(await customer.get(`/api/v1/device_type/${t.id}/data_streams`));
    expectOk(await customer.get(`/api/v1/device_type/${t.id}/extend_infos`));

    expectFailure(await customer.post('/api/v1/device_type', { name: 'x' }), 403);
    expectFailure(await customer.put(`/api/v1/device_type/${t.id}`, { name: 'x' }), 403);
    expectFailure(await customer.delete(`/api/v1/device_type/${t.id}`), 403);
    expectFailure(await customer.post(`/api/v1/device_type/${t.id}/type_key_reset`), 403);
    expectFailure(
      await customer.post(`/api/v1/device_type/${t.id}/attribute`, { identifier: 'a', name: 'a', data_type: 'number' }),
      403,
    );
    expectFailure(
      await customer.post(`/api/v1/device_type/${t.id}/data_stream`, { identifier: 'a', format: 'text' }),
      403,
    );
    expectFailure(
      await customer.post(`/api/v1/device_type/${t.id}/extend_info`, { info_type: 'text', name: 'a' }),
      403,
    );
  });

  it('answers 401 without a token', async () => {
    expectFailure(await client(ctx.app).get('/api/v1/device_types'), 401);
  });
});

describe('attribute models', () => {
  it('adds, lists, updates and deletes attribute models', async () => {
    const t = await createType(p.api);
    const base = `/api/v1/device_type/${t.id}`;
    const temp = expectOk(
      await p.api.post(`${base}/attribute`, {
        identifier: 'temperature',
        name: 'Temperature',
        data_type: 'number',
        unit: '°C',
        data_options: { min: -40, max: 125, step: 0.5, precision: 1 },
      }),
    );
    expect(temp).toEqual({ id: expect.any(String), identifier: 'temperature' });
    const onOff = expectOk(
      await p.api.post(`${base}/attribute`, { identifier: '_on', name: 'Switch', data_type: 'boolean' }),
    );

    const list = expectOk(await p.api.get(`${base}/attributes`));
    expect(list.items).toEqual([
      {
        id: temp.id,
        identifier: 'temperature',
        name: 'Temperature',
        data_type: 'number',
        unit: '°C',
        data_options: { min: -40, max: 125, step: 0.5, precision: 1 },
        create_time: expect.any(Number),
        update_time: expect.any(Number),
      },
      {
        id: onOff.id,
        identifier: '_on',
        name: 'Switch',
        data_type: 'boolean',
        unit: '',
        data_options: {},
        create_time: expect.any(Number),
        update_time: expect.any(Number),
      },
    ]);

    const updated = expectOk(
      await p.api.put(`${base}/attribute/_on`, { name: 'Power', data_options: { true_text: 'on', false_text: 'off' } }),
    );
    expect(updated).toMatchObject({
      id: onOff.id,
      identifier: '_on',
      name: 'Power',
      data_type: 'boolean',
      data_options: { true_text: 'on', false_text: 'off' },
    });

    const models = await ctx.services.deviceTypes.attributeModels(p.project.id, t.id);
    expect(models.map((m) => [m.identifier, m.name, m.dataType, m.options])).toEqual([
      ['temperature', 'Temperature', 'number', { min: -40, max: 125, step: 0.5, precision: 1 }],
      ['_on', 'Power', 'boolean', { true_text: 'on', false_text: 'off' }],
    ]);

    expectOk(await p.api.delete(`${base}/attribute/temperature`));
    expect(
      expectOk(await p.api.get(`${base}/attributes`)).items.map((a: { identifier: string }) => a.identifier),
    ).toEqual(['_on']);
    expectFailure(await p.api.delete(`${base}/attribute/temperature`), 404);
    expectFailure(await p.api.put(`${base}/attribute/temperature`, { name: 'x' }), 404);
  });

  it('rejects a duplicate identifier within a type with 409 but allows it in another type', async () => {
    const t = await createType(p.api);
    const body = { identifier: 'level', name: 'Level', data_type: 'number' };
    expectOk(await p.api.post(`/api/v1/device_type/${t.id}/attribute`, body));
    const failure = expectFailure(
      await p.api.post(`/api/v1/device_type/${t.id}/attribute`, { ...body, data_type: 'string' }),
      409,
    );
    expect(failure.message).toMatch(/level/);
    const t2 = await createType(p.api);
    expectOk(await p.api.post(`/api/v1/device_type/${t2.id}/attribute`, body));
  });

  it('rejects bad identifiers and data types with 400', async () => {
    const t = await createType(p.api);
    const url = `/api/v1/device_type/${t.id}/attribute`;
    for (const identifier of ['1abc', 'has-dash', 'has space', '', 'a'.repeat(65), 'ünïcode']) {
      const body = expectFailure(await p.api.post(url, { identifier, name: 'x', data_type: 'number' }), 400);
      expect(body.errors[0].path).toBe('identifier');
    }
    expectOk(await p.api.post(url, { identifier: 'a'.repeat(64), name: 'x', data_type: 'number' }));
    expect(
      expectFailure(await p.api.post(url, { identifier: 'ok', name: 'x', data_type: 'float' }), 400).errors[0].path,
    ).toBe('data_type');
    expectFailure(await p.api.post(url, { identifier: 'ok', data_type: 'number' }), 400);
    expectFailure(await p.api.put(`${url}/${'a'.repeat(64)}`, { data_type: 'integer' }), 400);
    expectFailure(await p.api.put(`${url}/${'a'.repeat(64)}`, {}), 400);
  });

  it('checks data_options against the data type', async () => {
    const t = await createType(p.api);
    const url = `/api/v1/device_type/${t.id}/attribute`;
    const bad: [string, Record<string, unknown>, string][] = [
      ['number', { min: 10, max: 1 }, 'data_options'],
      ['number', { step: 0 }, 'data_options.step'],
      ['number', { precision: 1.5 }, 'data_options.precision'],
      ['number', { max_length: 3 }, 'data_options'],
      ['string', { max_length: 0 }, 'data_options.max_length'],
      ['string', { choices: [] }, 'data_options.choices'],
      ['string', { max_length: 2, choices: ['abc'] }, 'data_options'],
      ['string', { min: 1 }, 'data_options'],
      ['boolean', { true_text: 1 }, 'data_options.true_text'],
      ['object', { anything: true }, 'data_options'],
      ['array', { min: 1 }, 'data_options'],
    ];
    for (const [dataType, options, path] of bad) {
      const body = expectFailure(
        await p.api.post(url, { identifier: 'x', name: 'x', data_type: dataType, data_options: options }),
        400,
      );
      expect(body.errors[0].path, `${dataType} ${JSON.stringify(options)}`).toBe(path);
    }
    expectFailure(
      await p.api.post(url, { identifier: 'x', name: 'x', data_type: 'number', data_options: 'min=1' }),
      400,
    );
    expectOk(
      await p.api.post(url, {
        identifier: 'mode',
        name: 'Mode',
        data_type: 'string',
        data_options: { max_length: 8, choices: ['auto', 'manual'] },
      }),
    );
    expect(expectOk(await p.api.get(`/api/v1/device_type/${t.id}/attributes`)).items).toHaveLength(1);
  });

  it('checks new data_options against the stored data type, and clears options when the data type changes', async () => {
    const t = await createType(p.api);
    const base = `/api/v1/device_type/${t.id}/attribute`;
    expectOk(
      await p.api.post(base, { identifier: 'level', name: 'Level', data_type: 'number', data_options: { min: 0 } }),
    );
    expect(
      expectFailure(await p.api.put(`${base}/level`, { data_options: { max_length: 4 } }), 400).errors[0].path,
    ).toBe('data_options');
    expectFailure(await p.api.put(`${base}/level`, { data_type: 'boolean', data_options: { min: 1 } }), 400);
    expect(expectOk(await p.api.put(`${base}/level`, { unit: 'm' }))).toMatchObject({
      data_type: 'number',
      unit: 'm',
      data_options: { min: 0 },
    });
    expect(expectOk(await p.api.put(`${base}/level`, { data_type: 'string' }))).toMatchObject({
      data_type: 'string',
      data_options: {},
    });
    expect(
      expectOk(await p.api.put(`${base}/level`, { data_type: 'boolean', data_options: { true_text: 'full' } })),
    ).toMatchObject({
      data_type: 'boolean',
      data_options: { true_text: 'full' },
    });
  });
});

describe('custom data streams', () => {
  it('adds, lists, updates and deletes data streams', async () => {
    const t = await createType(p.api);
    const base = `/api/v1/device_type/${t.id}`;
    const raw = expectOk(
      await p.api.post(`${base}/data_stream`, { identifier: 'stream', format: 'hex', tcp_bound: true }),
    );
    expect(raw).toEqual({ id: expect.any(String), identifier: 'stream' });
    const js = expectOk(
      await p.api.post(`${base}/data_stream`, {
        identifier: 'json-1',
        name: 'JSON',
        format: 'json',
        map_to_attributes: true,
      }),
    );

    expect(expectOk(await p.api.get(`${base}/data_streams`)).items).toEqual([
      {
        id: raw.id,
        identifier: 'stream',
        name: 'stream',
        format: 'hex',
        tcp_bound: true,
        map_to_attributes: false,
        create_time: expect.any(Number),
        update_time: expect.any(Number),
      },
      {
        id: js.id,
        identifier: 'json-1',
        name: 'JSON',
        format: 'json',
        tcp_bound: false,
        map_to_attributes: true,
        create_time: expect.any(Number),
        update_time: expect.any(Number),
      },
    ]);

    expect(expectOk(await p.api.put(`${base}/data_stream/stream`, { name: 'Serial', format: 'text' }))).toMatchObject({
      id: raw.id,
      name: 'Serial',
      format: 'text',
      tcp_bound: true,
    });
    expectOk(await p.api.delete(`${base}/data_stream/stream`));
    expect(
      expectOk(await p.api.get(`${base}/data_streams`)).items.map((s: { identifier: string }) => s.identifier),
    ).toEqual(['json-1']);
    expectFailure(await p.api.delete(`${base}/data_stream/stream`), 404);
    expectFailure(await p.api.put(`${base}/data_stream/stream`, { name: 'x' }), 404);
  });

  it('rejects a duplicate identifier within a type with 409', async () => {
    const t = await createType(p.api);
    expectOk(await p.api.post(`/api/v1/device_type/${t.id}/data_stream`, { identifier: 'raw', format: 'hex' }));
    const body = expectFailure(
      await p.api.post(`/api/v1/device_type/${t.id}/data_stream`, { identifier: 'raw', format: 'text' }),
      409,
    );
    expect(body.message).toMatch(/raw/);
  });

  it('allows at most one TCP-bound stream per type', async () => {
    const t = await createType(p.api);
    const base = `/api/v1/device_type/${t.id}`;
    expectOk(await p.api.post(`${base}/data_stream`, { identifier: 'first', format: 'hex', tcp_bound: true }));
    const body = expectFailure(
      await p.api.post(`${base}/data_stream`, { identifier: 'second', format: 'text', tcp_bound: true }),
      409,
    );
    expect(body.message).toMatch(/TCP-bound.*"first"/);
    expectOk(await p.api.post(`${base}/data_stream`, { identifier: 'second', format: 'text' }));
    expectFailure(await p.api.put(`${base}/data_stream/second`, { tcp_bound: true }), 409);
    // Re-stating the binding of the bound stream is not a conflict with itself.
    expectOk(await p.api.put(`${base}/data_stream/first`, { tcp_bound: true }));
    expectOk(await p.api.put(`${base}/data_stream/first`, { tcp_bound: false }));
    expect(expectOk(await p.api.put(`${base}/data_stream/second`, { tcp_bound: true })).tcp_bound).toBe(true);
    // Another type has its own binding.
    const t2 = await createType(p.api);
    expectOk(
      await p.api.post(`/api/v1/device_type/${t2.id}/data_stream`, {
        identifier: 'first',
        format: 'hex',
        tcp_bound: true,
      }),
    );
  });

  it('allows map_to_attributes only on json streams', async () => {
    const t = await createType(p.api);
    const base = `/api/v1/device_type/${t.id}`;
    const body = expectFailure(
      await p.api.post(`${base}/data_stream`, { identifier: 'raw', format: 'hex', map_to_attributes: true }),
      400,
    );
    expect(body.errors[0].path).toBe('map_to_attributes');
    expectOk(await p.api.post(`${base}/data_stream`, { identifier: 'js', format: 'json', map_to_attributes: true }));
    expectFailure(await p.api.put(`${base}/data_stream/js`, { format: 'text' }), 400);
    expectOk(await p.api.put(`${base}/data_stream/js`, { format: 'text', map_to_attributes: false }));
    expectFailure(await p.api.put(`${base}/data_stream/js`, { map_to_attributes: true }), 400);
  });

  it('rejects bad identifiers and formats with 400', async () => {
    const t = await createType(p.api);
    const url = `/api/v1/device_type/${t.id}/data_stream`;
    for (const identifier of ['', 'has space', 'dot.ted', 'a/b', 'x'.repeat(65)]) {
      expect(expectFailure(await p.api.post(url, { identifier, format: 'hex' }), 400).errors[0].path).toBe(
        'identifier',
      );
    }
    expectOk(await p.api.post(url, { identifier: '0-start_ok', format: 'hex' }));
    expect(expectFailure(await p.api.post(url, { identifier: 'ok', format: 'binary' }), 400).errors[0].path).toBe(
      'format',
    );
    expectFailure(await p.api.post(url, { identifier: 'ok' }), 400);
    expectFailure(await p.api.put(`${url}/0-start_ok`, {}), 400);
  });
});

describe('extend-info definitions', () => {
  it('lists the standard infos first, then the definitions of the type', async () => {
    const t = await createType(p.api);
    const base = `/api/v1/device_type/${t.id}`;
    const typeRow = expectOk(await p.api.get(base));
    expect(expectOk(await p.api.get(`${base}/extend_infos`)).items).toEqual([
      {
        id: 'location',
        info_type: 'location',
        name: 'Location',
        descr: 'Where the device is installed',
        enabled: true,
        options: { fields: ['latitude', 'longitude', 'address'] },
        create_time: typeRow.create_time,
        update_time: typeRow.create_time,
        is_standard: true,
      },
      {
        id: 'contact',
        info_type: 'contact',
        name: 'Contact',
        descr: 'Who to call about the device',
        enabled: true,
        options: { fields: ['name', 'phone', 'email'] },
        create_time: typeRow.create_time,
        update_time: typeRow.create_time,
        is_standard: true,
      },
    ]);

    const serial = expectOk(
      await p.api.post(`${base}/extend_info`, {
        info_type: 'text',
        name: 'Serial',
        descr: 'on the label',
        options: { max_length: 32 },
      }),
    );
    expect(serial).toEqual({ id: expect.any(String), name: 'Serial' });
    const color = expectOk(
      await p.api.post(`${base}/extend_info`, {
        info_type: 'enum',
        name: 'Color',
        enabled: false,
        options: { choices: ['red', 'blue'] },
      }),
    );
    const items = expectOk(await p.api.get(`${base}/extend_infos`)).items;
    expect(items.map((i: { id: string }) => i.id)).toEqual(['location', 'contact', serial.id, color.id]);
    expect(items[2]).toEqual({
      id: serial.id,
      info_type: 'text',
      name: 'Serial',
      descr: 'on the label',
      enabled: true,
      options: { max_length: 32 },
      create_time: expect.any(Number),
      update_time: expect.any(Number),
      is_standard: false,
    });
    expect(items[3]).toMatchObject({
      info_type: 'enum',
      name: 'Color',
      descr: '',
      enabled: false,
      options: { choices: ['red', 'blue'] },
    });
  });

  it('defaults options of types that need none', async () => {
    const t = await createType(p.api);
    const base = `/api/v1/device_type/${t.id}`;
    for (const info_type of ['text', 'number', 'boolean']) {
      expectOk(await p.api.post(`${base}/extend_info`, { info_type, name: info_type }));
    }
    const items = expectOk(await p.api.get(`${base}/extend_infos`)).items.filter(
      (i: { is_standard: boolean }) => !i.is_standard,
    );
    expect(items.map((i: { info_type: string; options: unknown }) => [i.info_type, i.options])).toEqual([
      ['text', {}],
      ['number', {}],
      ['boolean', {}],
    ]);
  });

  it('rejects bad info types and options with 400', async () => {
    const t = await createType(p.api);
    const url = `/api/v1/device_type/${t.id}/extend_info`;
    expect(expectFailure(await p.api.post(url, { info_type: 'location', name: 'x' }), 400).errors[0].path).toBe(
      'info_type',
    );
    expect(expectFailure(await p.api.post(url, { info_type: 'date', name: 'x' }), 400).errors[0].path).toBe(
      'info_type',
    );
    expectFailure(await p.api.post(url, { info_type: 'text' }), 400);
    const bad: [string, Record<string, unknown> | undefined, string][] = [
      ['enum', undefined, 'options.choices'],
      ['enum', { choices: [] }, 'options.choices'],
      ['text', { max_length: 0 }, 'options.max_length'],
      ['text', { choices: ['a'] }, 'options'],
      ['number', { min: 5, max: 1 }, 'options'],
      ['number', { integer: 'yes' }, 'options.integer'],
      ['boolean', { x: 1 }, 'options'],
    ];
    for (const [info_type, options, path] of bad) {
      const body = expectFailure(await p.api.post(url, { info_type, name: 'x', ...(options ? { options } : {}) }), 400);
      expect(body.errors[0].path, `${info_type} ${JSON.stringify(options)}`).toBe(path);
    }
    expect(expectOk(await p.api.get(`/api/v1/device_type/${t.id}/extend_infos`)).items).toHaveLength(2);
  });

  it('updates a definition and checks new options against its info type', async () => {
    const t = await createType(p.api);
    const base = `/api/v1/device_type/${t.id}/extend_info`;
    const info = expectOk(await p.api.post(base, { info_type: 'number', name: 'Floor', options: { integer: true } }));
    const updated = expectOk(
      await p.api.put(`${base}/${info.id}`, {
        name: 'Storey',
        descr: 'above ground',
        enabled: false,
        options: { min: 0, max: 99 },
      }),
    );
    expect(updated).toEqual({
      id: info.id,
      info_type: 'number',
      name: 'Storey',
      descr: 'above ground',
      enabled: false,
      options: { min: 0, max: 99 },
      create_time: expect.any(Number),
      update_time: expect.any(Number),
      is_standard: false,
    });
    expect(
      expectFailure(await p.api.put(`${base}/${info.id}`, { options: { choices: ['a'] } }), 400).errors[0].path,
    ).toBe('options');
    expectFailure(await p.api.put(`${base}/${info.id}`, {}), 400);
    expectFailure(await p.api.put(`${base}/${info.id}`, { info_type: 'text' }), 400);
    expect(expectOk(await p.api.get(`/api/v1/device_type/${t.id}/extend_infos`)).items[2]).toEqual(updated);
  });

  it('refuses to change or delete a standard info', async () => {
    const t = await createType(p.api);
    const base = `/api/v1/device_type/${t.id}/extend_info`;
    expectFailure(await p.api.put(`${base}/location`, { name: 'Place' }), 400);
    expectFailure(await p.api.delete(`${base}/contact`), 400);
    expect(expectOk(await p.api.get(`/api/v1/device_type/${t.id}/extend_infos`)).items).toHaveLength(2);
  });

  it("deletes a definition with every device's value of it", async () => {
    const t = await createType(p.api);
    const base = `/api/v1/device_type/${t.id}/extend_info`;
    const gone = expectOk(await p.api.post(base, { info_type: 'text', name: 'Serial' }));
    const kept = expectOk(await p.api.post(base, { info_type: 'boolean', name: 'Indoor' }));
    const d = await createDevice(p.api, t.id);
    const now = Date.now();
    const value = (infoId: string, v: unknown) => ({
      deviceId: d.id,
      infoId,
      projectId: p.project.id,
      value: v,
      createTime: now,
      updateTime: now,
    });
    await ctx.database.db
      .insert(deviceInfos)
      .values([value(gone.id, 'SN-1'), value(kept.id, true), value('location', { latitude: 1 })]);

    expect(expectOk(await p.api.delete(`${base}/${gone.id}`))).toEqual({});
    const rows = await ctx.database.db.select().from(deviceInfos).where(eq(deviceInfos.deviceId, d.id));
    expect(rows.map((r) => r.infoId).sort()).toEqual([kept.id, 'location'].sort());
    expect(
      expectOk(await p.api.get(`/api/v1/device_type/${t.id}/extend_infos`)).items.map((i: { id: string }) => i.id),
    ).toEqual(['location', 'contact', kept.id]);
    expectFailure(await p.api.delete(`${base}/${gone.id}`), 404);
    expectFailure(await p.api.put(`${base}/${gone.id}`, { name: 'x' }), 404);

    // Deleting the type (once its device is gone) removes the values of its definitions too.
    expectOk(await p.api.delete(`/api/v1/device/${d.id}`));
    const d2 = await createDevice(p.api, (await createType(p.api)).id);
    await ctx.database.db.insert(deviceInfos).values({ ...value(kept.id, false), deviceId: d2.id });
    expectOk(await p.api.delete(`/api/v1/device_type/${t.id}`));
    const left = await ctx.database.db
      .select()
      .from(deviceInfos)
      .where(and(eq(deviceInfos.projectId, p.project.id), eq(deviceInfos.infoId, kept.id)));
    expect(left).toEqual([]);
  });
});
