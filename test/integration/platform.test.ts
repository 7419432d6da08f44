import { eq, sql } from 'drizzle-orm';
import { rowsOf } from '../../src/db/client.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admins, apiApps, devices } from '../../src/db/schema/index.ts';
import {
  client,
  createProject,
  createTestApp,
  expectFailure,
  expectOk,
  TEST_PLATFORM_TOKEN,
  type Client,
  type ProjectFixture,
  type TestContext,
} from '../helpers/app.ts';
import { addDeviceWithToken } from '../helpers/factories.ts';

let ctx: TestContext;
let platform: Client;

beforeAll(async () => {
  ctx = await createTestApp();
  platform = client(ctx.app, TEST_PLATFORM_TOKEN);
});
afterAll(() => ctx?.close());

describe('platform API', () => {
  it('creates a project and returns exactly the documented credentials, which work', async () => {
    const created = expectOk(await platform.post('/platform/v1/projects', { name: 'acme', descr: 'first tenant' }));
    expect(created).toEqual({
      id: expect.any(String),
      name: 'acme',
      project_key: expect.any(String),
      app: { app_id: expect.any(String), access_key: expect.any(String), secret_key: expect.any(String) },
      admin: { account: 'admin', password: expect.any(String) },
    });
    expect(Object.keys(created).sort()).toEqual(['admin', 'app', 'id', 'name', 'project_key']);
    expect(Object.keys(created.app).sort()).toEqual(['access_key', 'app_id', 'secret_key']);
    expect(Object.keys(created.admin).sort()).toEqual(['account', 'password']);

    const anon = client(ctx.app);
    const appLogin = expectOk(await anon.post('/api/v1/access_token', created.app));
    expect(appLogin.access_token).toEqual(expect.any(String));
    expectOk(await anon.post('/api/v1/admin_login', { app_id: created.app.app_id, ...created.admin }));
  });

  it('lists projects with their description and device count', async () => {
    const created = expectOk(await platform.post('/platform/v1/projects', { name: 'listed', descr: 'has one device' }));
    const login = expectOk(await client(ctx.app).post('/api/v1/access_token', created.app));
    expectOk(await client(ctx.app, login.access_token).post('/api/v1/device', { name: 'meter' }));

    const { items } = expectOk(await platform.get('/platform/v1/projects'));
    expect(items.find((p: { id: string }) => p.id === created.id)).toEqual({
      id: created.id,
      name: 'listed',
      descr: 'has one device',
      project_key: created.project_key,
      create_time: expect.any(Number),
      device_count: 1,
    });
  });

  it('deletes a project with its devices, apps and administrators; its app can no longer log in', async () => {
    const created = expectOk(await platform.post('/platform/v1/projects', { name: 'doomed' }));
    const anon = client(ctx.app);
    const token = expectOk(await anon.post('/api/v1/access_token', created.app)).access_token;
    const device = expectOk(await client(ctx.app, token).post('/api/v1/device', { name: 'gone soon' }));

    expect(expectOk(await platform.delete(`/platform/v1/projects/${created.id}`))).toEqual({});

    const { items } = expectOk(await platform.get('/platform/v1/projects'));
    expect(items.map((p: { id: string }) => p.id)).not.toContain(created.id);
    expectFailure(await anon.post('/api/v1/access_token', created.app), 401);
    expectFailure(await anon.post('/api/v1/admin_login', { app_id: created.app.app_id, ...created.admin }), 401);
    expectFailure(await client(ctx.app, token).get(`/api/v1/device/${device.id}`), 401);
    const db = ctx.database.db;
    expect(await db.select().from(devices).where(eq(devices.projectId, created.id))).toEqual([]);
    expect(await db.select().from(apiApps).where(eq(apiApps.projectId, created.id))).toEqual([]);
    expect(await db.select().from(admins).where(eq(admins.projectId, created.id))).toEqual([]);
  });

  it('deletes the project’s history with it, and no other project’s', async () => {
    const keep = await createProject(ctx, 'history kept');
    const drop = await createProject(ctx, 'history dropped');
    const report = async (p: ProjectFixture) => {
      const d = await addDeviceWithToken(p, { name: 'reporter' });
      const res = await ctx.app.inject({
        method: 'POST',
        url: `/device/v1/${d.token}/attributes`,
        headers: { 'project-key': p.project.project_key, 'content-type': 'application/json' },
        payload: JSON.stringify({ temperature: 21.5 }),
      });
      expect(res.json()).toMatchObject({ result: 1 });
    };
    const historyOf = async (projectId: string) =>
      Number(
        rowsOf<{ n: string | number }>(
          await ctx.database.db.execute(
            sql`select count(*) as n from attribute_history where project_id = ${projectId}`,
          ),
        )[0]!.n,
      );
    await report(keep);
    await report(drop);
    // `result: 1` means stored (docs/device-protocol.md §5): both are in history now.
    expect(await historyOf(keep.project.id)).toBe(1);
    expect(await historyOf(drop.project.id)).toBe(1);
    expectOk(await platform.delete(`/platform/v1/projects/${drop.project.id}`));
    expect(await historyOf(drop.project.id)).toBe(0);
    expect(await historyOf(keep.project.id)).toBe(1);
  });

  it('answers 404 when deleting a project that does not exist', async () => {
    expectFailure(await platform.delete('/platform/v1/projects/000000000000000000000000'), 404);
  });

  it('leaves other projects alone when deleting one', async () => {
    const keep = expectOk(await platform.post('/platform/v1/projects', { name: 'keep' }));
    const drop = expectOk(await platform.post('/platform/v1/projects', { name: 'drop' }));
    expectOk(await platform.delete(`/platform/v1/projects/${drop.id}`));
    expectOk(await client(ctx.app).post('/api/v1/access_token', keep.app));
  });

  it('rejects an invalid project with 400 and names the field', async () => {
    const empty = expectFailure(await platform.post('/platform/v1/projects', { name: '  ' }), 400);
    expect(empty.errors).toEqual([{ path: 'name', message: expect.any(String) }]);
    expectFailure(await platform.post('/platform/v1/projects', { name: 'x'.repeat(129) }), 400);
    expectFailure(await platform.post('/platform/v1/projects', { descr: 'no name' }), 400);
    expectFailure(await platform.post('/platform/v1/projects', { name: 'q', device_quota: -1 }), 400);
  });

  it('answers 401 without the platform token, with a wrong one, or with a project token', async () => {
    expectFailure(await client(ctx.app).get('/platform/v1/projects'), 401);
    expectFailure(
      await client(ctx.app, 'wrong-platform-token-0123456789').post('/platform/v1/projects', { name: 'x' }),
      401,
    );
    expectFailure(await client(ctx.app, `${TEST_PLATFORM_TOKEN}x`).get('/platform/v1/projects'), 401);
    const created = expectOk(await platform.post('/platform/v1/projects', { name: 'tenant' }));
    const appToken = expectOk(await client(ctx.app).post('/api/v1/access_token', created.app)).access_token;
    expectFailure(await client(ctx.app, appToken).delete(`/platform/v1/projects/${created.id}`), 401);
    expectOk(await client(ctx.app, appToken).get('/api/v1/devices'));
  });
});

describe('platform API without PLATFORM_TOKEN', () => {
  let off: TestContext;
  beforeAll(async () => {
    off = await createTestApp({ PLATFORM_TOKEN: undefined });
  });
  afterAll(() => off?.close());

  it('does not exist: every platform route answers 404 Request invalid', async () => {
    for (const [method, url] of [
      ['POST', '/platform/v1/projects'],
      ['GET', '/platform/v1/projects'],
      ['DELETE', '/platform/v1/projects/000000000000000000000000'],
    ] as const) {
      const res = await client(off.app, TEST_PLATFORM_TOKEN).call(
        method,
        url,
        method === 'POST' ? { name: 'x' } : undefined,
      );
      expect(res.status).toBe(404);
      expect(res.body).toEqual({ message: 'Request invalid' });
    }
  });
});
