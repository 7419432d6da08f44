import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCertificateRepository } from '../../src/db/repositories/certificate.repository.ts';
import { createCertificateService } from '../../src/domain/devices/certificate.service.ts';
import {
  client,
  createProject,
  createTestApp,
  expectOk,
  type ApiResponse,
  type ProjectFixture,
  type TestContext,
} from '../helpers/app.ts';
import { addDeviceType } from '../helpers/factories.ts';

let ctx: TestContext;
let p: ProjectFixture;

beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx);
});
afterAll(() => ctx?.close());

async function certificate(
  body: unknown,
  projectKey: string | null = p.project.project_key,
  c: TestContext = ctx,
): Promise<ApiResponse> {
  const res = await c.app.inject({
    method: 'POST',
    url: '/device/v1/certificate',
    headers: { 'content-type': 'application/json', ...(projectKey !== null ? { 'project-key': projectKey } : {}) },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.statusCode, body: res.json(), headers: res.headers };
}

/** `{"result":0,"errcode","message"}`; returns the message. */
function expectRefused(
  res: ApiResponse,
  errcode: number,
  status = errcode === 401 || errcode === 429 ? errcode : 200,
): string {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body).toEqual({ result: 0, errcode, message: expect.any(String) });
  return res.body.message;
}

const newType = (f: ProjectFixture, body: Record<string, unknown>) => addDeviceType(f.api, { name: 'type', ...body });

async function devicesWithKey(f: ProjectFixture, key: string) {
  return expectOk(await f.api.get(`/api/v1/devices?device_key=${encodeURIComponent(key)}`)).items as Array<{
    id: string;
    name: string;
    type: string;
  }>;
}

describe('POST /device/v1/certificate for an existing device', () => {
  it('answers the device certificate by its device key', async () => {
    const { id } = expectOk(await p.api.post('/api/v1/device', { name: 'pump', device_key: 'imei-0001' }));
    const cert = expectOk(await p.api.get(`/api/v1/device/${id}/certificate`));
    const res = await certificate({ device_key: 'imei-0001' });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      result: 1,
      device: { id, name: 'pump', access_token: cert.access_token, conn_type: '1' },
      message: 'ok',
    });
    // the certificate works for device access
    const report = await ctx.app.inject({
      method: 'POST',
      url: `/device/v1/${res.body.device.access_token}/attributes`,
      headers: { 'project-key': p.project.project_key },
      payload: { a: 1 },
    });
    expect(report.json()).toMatchObject({ result: 1 });
  });

  it('answers the type\'s conn_type (a gateway is "3") and ignores type_key for existing devices', async () => {
    const gw = await newType(p, { conn_type: '3' });
    const { id } = expectOk(await p.api.post('/api/v1/device', { name: 'gw', type: gw.id, device_key: 'gw-key' }));
    const res = await certificate({ device_key: 'gw-key', type_key: 'whatever' });
    expect(res.body).toMatchObject({ result: 1, device: { id, name: 'gw', conn_type: '3' }, message: 'ok' });
  });

  it('refuses a disabled device', async () => {
    const { id } = expectOk(await p.api.post('/api/v1/device', { name: 'off', device_key: 'disabled-key' }));
    await ctx.database.db.execute(sql`update devices set disabled = true where id = ${id}`);
    expect(expectRefused(await certificate({ device_key: 'disabled-key' }), 403)).toMatch(/disabled/);
  });
});

describe('POST /device/v1/certificate creating devices', () => {
  it('creates the device when its type allows auto-create (name = device key)', async () => {
    const t = await newType(p, { allow_auto_create: true });
    const res = await certificate({ device_key: 'chip-auto-1', type_key: t.type_key });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      result: 1,
      device: { id: expect.any(String), name: 'chip-auto-1', access_token: expect.any(String), conn_type: '1' },
      message: 'ok',
    });
    const created = expectOk(await p.api.get(`/api/v1/device/${res.body.device.id}`));
    expect(created).toMatchObject({ name: 'chip-auto-1', device_key: 'chip-auto-1', type: t.id });
    expect(expectOk(await p.api.get(`/api/v1/device/${created.id}/certificate`)).access_token).toBe(
      res.body.device.access_token,
    );
    // asking again answers the same device
    expect((await certificate({ device_key: 'chip-auto-1', type_key: t.type_key })).body).toEqual(res.body);
    expect(await devicesWithKey(p, 'chip-auto-1')).toHaveLength(1);
  });

  it('refuses a type that does not allow auto-create', async () => {
    const t = await newType(p, { allow_auto_create: false });
    expect(expectRefused(await certificate({ device_key: 'chip-no', type_key: t.type_key }), 403)).toMatch(
      /auto-creat/,
    );
    expect(await devicesWithKey(p, 'chip-no')).toEqual([]);
  });

  it("refuses an unknown type key, another project's type key and a missing type key", async () => {
    const other = await createProject(ctx, 'other');
    const foreign = await newType(other, { allow_auto_create: true });
    expect(expectRefused(await certificate({ device_key: 'chip-x', type_key: 'no-such-key' }), 404)).toBe(
      'Device type not found',
    );
    expect(expectRefused(await certificate({ device_key: 'chip-x', type_key: foreign.type_key }), 404)).toBe(
      'Device type not found',
    );
    expect(expectRefused(await certificate({ device_key: 'chip-x' }), 404)).toMatch(/type_key/);
    expect(expectRefused(await certificate({ device_key: 'chip-x', type_key: '' }), 404)).toMatch(/type_key/);
    expect(await devicesWithKey(p, 'chip-x')).toEqual([]);
    expect(await devicesWithKey(other, 'chip-x')).toEqual([]);
  });

  it('refuses to create beyond the project device quota', async () => {
    const small = await ctx.services.projects.create({ name: 'small', device_quota: 1 });
    const login = expectOk(await client(ctx.app).post('/api/v1/access_token', small.app));
    const api = client(ctx.app, login.access_token);
    const t = expectOk(await api.post('/api/v1/device_type', { name: 'auto', allow_auto_create: true }));
    expect((await certificate({ device_key: 'first', type_key: t.type_key }, small.project_key)).body.result).toBe(1);
    expect(
      expectRefused(await certificate({ device_key: 'second', type_key: t.type_key }, small.project_key), 422),
    ).toMatch(/quota/);
    expect(expectOk(await api.get('/api/v1/devices')).total).toBe(1);
    // the existing device still gets its certificate at the quota
    expect((await certificate({ device_key: 'first' }, small.project_key)).body.result).toBe(1);
  });

  it('holds the quota when a fleet requests certificates at the same moment', async () => {
    const small = await ctx.services.projects.create({ name: 'fleet', device_quota: 3 });
    const api = client(ctx.app, expectOk(await client(ctx.app).post('/api/v1/access_token', small.app)).access_token);
    const t = expectOk(await api.post('/api/v1/device_type', { name: 'auto', allow_auto_create: true }));
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        certificate({ device_key: `unit-${i}`, type_key: t.type_key }, small.project_key),
      ),
    );
    expect(answers.filter((a) => a.body.result === 1)).toHaveLength(3);
    expect(expectOk(await api.get('/api/v1/devices')).total).toBe(3);
  });

  it('binds the new device to the given customer of the project', async () => {
    const t = await newType(p, { allow_auto_create: true });
    const customer = expectOk(
      await p.api.post('/api/v1/customer', { name: 'Ann', account: 'ann-cert', password: 'password-ann' }),
    );
    const res = await certificate({ device_key: 'chip-cust', type_key: t.type_key, customer_id: customer.id });
    expect(res.body.result).toBe(1);
    const bound = expectOk(await p.api.get(`/api/v1/customer/${customer.id}/devices`));
    expect(bound.items.map((d: { id: string }) => d.id)).toEqual([res.body.device.id]);
    const login = expectOk(
      await client(ctx.app).post('/api/v1/customer_login', {
        app_id: p.project.app.app_id,
        account: 'ann-cert',
        password: 'password-ann',
      }),
    );
    expectOk(await client(ctx.app, login.access_token).get(`/api/v1/device/${res.body.device.id}`));
  });

  it("refuses an unknown customer, or another project's, without creating the device", async () => {
    const t = await newType(p, { allow_auto_create: true });
    const other = await createProject(ctx, 'other customers');
    const foreign = expectOk(
      await other.api.post('/api/v1/customer', { name: 'Bob', account: 'bob-cert', password: 'password-bob' }),
    );
    expect(
      expectRefused(
        await certificate({ device_key: 'chip-nc', type_key: t.type_key, customer_id: 'no-such-customer' }),
        404,
      ),
    ).toBe('Customer not found');
    expect(
      expectRefused(await certificate({ device_key: 'chip-nc', type_key: t.type_key, customer_id: foreign.id }), 404),
    ).toBe('Customer not found');
    expect(await devicesWithKey(p, 'chip-nc')).toEqual([]);
  });

  it('gives two concurrent requests for the same new key the same device', async () => {
    const t = await newType(p, { allow_auto_create: true });
    for (let round = 0; round < 3; round++) {
      const key = `race-${round}`;
      const answers = await Promise.all([0, 1, 2, 3].map(() => certificate({ device_key: key, type_key: t.type_key })));
      for (const a of answers) expect(a.body).toMatchObject({ result: 1, message: 'ok' });
      expect(new Set(answers.map((a) => a.body.device.id)).size).toBe(1);
      expect(new Set(answers.map((a) => a.body.device.access_token)).size).toBe(1);
      expect(await devicesWithKey(p, key)).toHaveLength(1);
    }
  });
});

describe('certificate service under a race', () => {
  it('answers the device another request created between its look-up and its insert', async () => {
    const t = await newType(p, { allow_auto_create: true });
    const winner = expectOk(
      await p.api.post('/api/v1/device', { name: 'winner', type: t.id, device_key: 'raced-key' }),
    );
    const repo = createCertificateRepository(ctx.database.db);
    let lookups = 0;
    // The first look-up misses, as it would have just before the other request's insert.
    const racing = {
      ...repo,
      deviceByKey: (projectId: string, key: string) =>
        lookups++ === 0 ? Promise.resolve(undefined) : repo.deviceByKey(projectId, key),
    };
    const service = createCertificateService({ repo: racing, devices: ctx.services.devices });
    const device = await service.request(p.project.project_key, { device_key: 'raced-key', type_key: t.type_key });
    expect(device).toMatchObject({ id: winner.id, name: 'winner' });
    expect(lookups).toBe(2);
    expect(await devicesWithKey(p, 'raced-key')).toHaveLength(1);
  });
});

describe('POST /device/v1/certificate failures', () => {
  it('answers an unknown or missing project key with 401 in the device shape', async () => {
    expectOk(await p.api.post('/api/v1/device', { name: 'k', device_key: 'known-key' }));
    expect(expectRefused(await certificate({ device_key: 'known-key' }, 'wrong-project-key'), 401)).toBe(
      'Unknown project key',
    );
    expect(expectRefused(await certificate({ device_key: 'known-key' }, null), 401)).toMatch(/Project-Key/);
  });

  it('answers invalid bodies with errcode 400 and HTTP 200', async () => {
    for (const body of [
      {},
      { device_key: '' },
      { device_key: '   ' },
      { device_key: 'k'.repeat(129) },
      { device_key: 5 },
      [1],
    ]) {
      expectRefused(await certificate(body), 400);
    }
    const res = await certificate('{"device_key":');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ result: 0, errcode: 400, message: 'Invalid JSON message' });
  });
});

describe('certificate rate limit', () => {
  it('limits requests per client address to PROVISION_BURST, then PROVISION_RATE, in the device shape', async () => {
    const limited = await createTestApp({ PROVISION_BURST: 6, PROVISION_RATE: 0.01 });
    try {
      const project = await limited.services.projects.create({ name: 'limited' });
      const answers: ApiResponse[] = [];
      for (let i = 0; i < 7; i++)
        answers.push(await certificate({ device_key: 'nobody' }, project.project_key, limited));
      for (const a of answers.slice(0, 6)) expect(a.body).toMatchObject({ result: 0, errcode: 404 });
      expectRefused(answers[6]!, 429);
      expect(answers[6]!.headers['retry-after']).toBeDefined();
    } finally {
      await limited.close();
    }
  });
});
