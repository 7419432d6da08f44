import { eq } from 'drizzle-orm';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiApps, projects } from '../../src/db/schema/index.ts';
import { hashSecret } from '../../src/lib/passwords.ts';
import { startTestBroker, type TestBroker } from '../helpers/broker.ts';
import { client, createProject, createTestApp, expectFailure, expectOk, type TestContext } from '../helpers/app.ts';

/**
 * Machine secrets (an app's secret_key, a project's view secret) are stored as a keyed HMAC
 * (src/lib/passwords.ts); argon2 hashes stored before verify once and are rewritten on first use.
 */
let ctx: TestContext;
let tb: TestBroker;

beforeAll(async () => {
  ctx = await createTestApp();
  tb = await startTestBroker(ctx);
});
afterAll(async () => {
  await tb?.close();
  await ctx?.close();
});

const appHash = async (appId: string) =>
  (await ctx.database.db.select().from(apiApps).where(eq(apiApps.id, appId)))[0]!.secretHash;
const viewHash = async (projectId: string) =>
  (await ctx.database.db.select().from(projects).where(eq(projects.id, projectId)))[0]!.viewSecretHash;

describe('machine secrets', () => {
  it('an app whose secret_key was stored argon2 still logs in; afterwards its hash is the HMAC form and earlier tokens stay valid', async () => {
    const p = await createProject(ctx);
    const { app_id, access_key, secret_key } = p.project.app;
    await ctx.database.db
      .update(apiApps)
      .set({ secretHash: await hashSecret(secret_key) })
      .where(eq(apiApps.id, app_id));
    // A token issued before the migration.
    const before = p.api;
    const anon = client(ctx.app);

    const token = expectOk(await anon.post('/api/v1/access_token', { app_id, access_key, secret_key }))
      .access_token as string;
    const migrated = await appHash(app_id);
    expect(migrated).toMatch(/^hmac-sha256\$[A-Za-z0-9_-]{43}$/);
    expect(migrated).not.toContain(secret_key);

    // The same secret keeps working against the new form, a wrong one does not, and no token was revoked.
    expectOk(await anon.post('/api/v1/access_token', { app_id, access_key, secret_key }));
    // The last character changed (to another one: a random secret ends in "x" one time in 64).
    const wrong = `${secret_key.slice(0, -1)}${secret_key.endsWith('x') ? 'y' : 'x'}`;
    expectFailure(await anon.post('/api/v1/access_token', { app_id, access_key, secret_key: wrong }), 401);
    expect(await appHash(app_id)).toBe(migrated);
    expectOk(await before.get('/api/v1/devices'));
    expectOk(await client(ctx.app, token).get('/api/v1/devices'));
  });

  it('a view secret stored argon2 still lets its viewer connect; afterwards it is stored in the HMAC form', async () => {
    const p = await createProject(ctx);
    const issued = expectOk(await p.api.post('/api/v1/view_key'));
    await ctx.database.db
      .update(projects)
      .set({ viewSecretHash: await hashSecret(issued.view_secret) })
      .where(eq(projects.id, p.project.id));

    const viewer = await mqtt.connectAsync(tb.url, {
      username: issued.view_key,
      password: issued.view_secret,
      reconnectPeriod: 0,
    });
    await viewer.endAsync();
    expect(await viewHash(p.project.id)).toMatch(/^hmac-sha256\$/);
    expect(await ctx.services.viewKey.verify(issued.view_key, issued.view_secret)).toEqual({ projectId: p.project.id });
    expect(await ctx.services.viewKey.verify(issued.view_key, `${issued.view_secret}x`)).toBeUndefined();
  });

  it('new and reset secrets are stored in the HMAC form', async () => {
    // A new project's first app, before anybody logs in with it.
    const fresh = await ctx.services.projects.create({ name: 'fresh' });
    expect(await appHash(fresh.app.app_id)).toMatch(/^hmac-sha256\$/);
    const p = await createProject(ctx);
    const created = expectOk(await p.api.post('/api/v1/app', { name: 'second' }));
    expect(await appHash(created.app_id)).toMatch(/^hmac-sha256\$/);
    const reset = expectOk(await p.api.post(`/api/v1/app/${created.app_id}/secret_reset`));
    expect(await appHash(created.app_id)).toMatch(/^hmac-sha256\$/);
    expectOk(
      await client(ctx.app).post('/api/v1/access_token', {
        app_id: created.app_id,
        access_key: reset.access_key,
        secret_key: reset.secret_key,
      }),
    );
  });
});
