import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projects } from '../../src/db/schema/index.ts';
import {
  client,
  createProject,
  createTestApp,
  expectFailure,
  expectOk,
  type ProjectFixture,
  type TestContext,
} from '../helpers/app.ts';
import { addCustomerClient } from '../helpers/factories.ts';

let ctx: TestContext;

beforeAll(async () => {
  ctx = await createTestApp();
});
afterAll(() => ctx?.close());

const verify = (key: string, secret: string) => ctx.services.viewKey.verify(key, secret);

/** A customer token of the fixture's project, made with direct SQL so this file does not depend on the customers area. */
const customerClient = (f: ProjectFixture) => addCustomerClient(ctx, f);

describe('data-view key', () => {
  it('a new project has no view key and no secret', async () => {
    const p = await createProject(ctx);
    expect(expectOk(await p.api.get('/api/v1/view_key'))).toEqual({ view_key: null, has_secret: false });
  });

  it('creates the key and a secret that the broker can verify', async () => {
    const p = await createProject(ctx);
    const issued = expectOk(await p.api.post('/api/v1/view_key'));
    expect(issued).toEqual({
      view_key: expect.stringMatching(/^[A-Za-z0-9]{16}$/),
      view_secret: expect.stringMatching(/^[A-Za-z0-9]{32}$/),
    });

    const shown = expectOk(await p.admin.get('/api/v1/view_key'));
    expect(shown).toEqual({ view_key: issued.view_key, has_secret: true });
    expect(JSON.stringify(shown)).not.toContain(issued.view_secret);

    expect(await verify(issued.view_key, issued.view_secret)).toEqual({ projectId: p.project.id });
  });

  it('stores the secret hashed, never in clear', async () => {
    const p = await createProject(ctx);
    const issued = expectOk(await p.api.post('/api/v1/view_key'));
    const [row] = await ctx.database.db.select().from(projects).where(eq(projects.id, p.project.id));
    expect(row?.viewKey).toBe(issued.view_key);
    expect(row?.viewSecretHash).toMatch(/^hmac-sha256\$/);
    expect(row?.viewSecretHash).not.toContain(issued.view_secret);
  });

  it('rotates the secret and keeps the key: the old secret no longer verifies', async () => {
    const p = await createProject(ctx);
    const first = expectOk(await p.api.post('/api/v1/view_key', {}));
    const second = expectOk(await p.api.post('/api/v1/view_key', { rotate_key: false }));
    expect(second.view_key).toBe(first.view_key);
    expect(second.view_secret).not.toBe(first.view_secret);
    expect(await verify(first.view_key, first.view_secret)).toBeUndefined();
    expect(await verify(second.view_key, second.view_secret)).toEqual({ projectId: p.project.id });
  });

  it('replaces the key too with rotate_key: true; the old key no longer verifies', async () => {
    const p = await createProject(ctx);
    const first = expectOk(await p.api.post('/api/v1/view_key'));
    const rotated = expectOk(await p.api.post('/api/v1/view_key', { rotate_key: true }));
    expect(rotated.view_key).not.toBe(first.view_key);
    expect(await verify(first.view_key, first.view_secret)).toBeUndefined();
    expect(await verify(first.view_key, rotated.view_secret)).toBeUndefined();
    expect(await verify(rotated.view_key, rotated.view_secret)).toEqual({ projectId: p.project.id });
    expect(expectOk(await p.api.get('/api/v1/view_key'))).toEqual({ view_key: rotated.view_key, has_secret: true });
  });

  it('accepts a POST without any body (curl -X POST)', async () => {
    const p = await createProject(ctx);
    const res = await client(ctx.app, p.appToken).call('POST', '/api/v1/view_key');
    const issued = expectOk(res);
    expect(await verify(issued.view_key, issued.view_secret)).toEqual({ projectId: p.project.id });
  });

  it("gives each project its own key, and one project's secret does not open another's key", async () => {
    const [a, b] = await Promise.all([createProject(ctx, 'a'), createProject(ctx, 'b')]);
    const ka = expectOk(await a.api.post('/api/v1/view_key'));
    const kb = expectOk(await b.api.post('/api/v1/view_key'));
    expect(ka.view_key).not.toBe(kb.view_key);
    expect(await verify(ka.view_key, kb.view_secret)).toBeUndefined();
    expect(await verify(kb.view_key, kb.view_secret)).toEqual({ projectId: b.project.id });
  });

  it('verify refuses unknown keys, wrong secrets, empty and overlong input', async () => {
    const p = await createProject(ctx);
    const issued = expectOk(await p.api.post('/api/v1/view_key'));
    expect(await verify('unknownunknown00', issued.view_secret)).toBeUndefined();
    expect(await verify(issued.view_key, 'wrong-secret')).toBeUndefined();
    expect(await verify(issued.view_key, '')).toBeUndefined();
    expect(await verify('', issued.view_secret)).toBeUndefined();
    expect(await verify(issued.view_key, issued.view_secret + 'x'.repeat(300))).toBeUndefined();
    expect(await verify('k'.repeat(300), issued.view_secret)).toBeUndefined();
  });

  it('rejects a non-boolean rotate_key with 400', async () => {
    const p = await createProject(ctx);
    const body = expectFailure(await p.api.post('/api/v1/view_key', { rotate_key: 'yes' }), 400);
    expect(body.errors[0].path).toBe('rotate_key');
  });

  it('answers 403 to a customer token and 401 without a token', async () => {
    const p = await createProject(ctx);
    const customer = await customerClient(p);
    expectFailure(await customer.get('/api/v1/view_key'), 403);
    expectFailure(await customer.post('/api/v1/view_key'), 403);
    expectFailure(await client(ctx.app).get('/api/v1/view_key'), 401);
    expectFailure(await client(ctx.app).post('/api/v1/view_key'), 401);
    expect(expectOk(await p.api.get('/api/v1/view_key'))).toEqual({ view_key: null, has_secret: false });
  });
});
