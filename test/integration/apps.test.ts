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
import { addCustomerClient } from '../helpers/factories.ts';

let ctx: TestContext;
let p: ProjectFixture;
let other: ProjectFixture;

beforeAll(async () => {
  ctx = await createTestApp();
  [p, other] = await Promise.all([createProject(ctx, 'apps'), createProject(ctx, 'other')]);
});
afterAll(() => ctx?.close());

const anon = () => client(ctx.app);
const tokenOf = async (app_id: string, access_key: string, secret_key: string) =>
  expectOk(await anon().post('/api/v1/access_token', { app_id, access_key, secret_key })).access_token as string;

/** A customer token of the fixture's project, made with direct SQL so this file does not depend on the customers area. */
const customerClient = (f: ProjectFixture) => addCustomerClient(ctx, f);

describe('API apps', () => {
  it("lists the project's first app without any secret", async () => {
    const fresh = await createProject(ctx, 'fresh');
    const list = expectOk(await fresh.api.get('/api/v1/apps'));
    expect(list).toEqual({
      items: [
        {
          app_id: fresh.project.app.app_id,
          name: 'default',
          access_key: fresh.project.app.access_key,
          create_time: expect.any(Number),
        },
      ],
    });
    expect(JSON.stringify(list)).not.toContain(fresh.project.app.secret_key);
  });

  it('creates an app whose credentials get a token for the same project', async () => {
    const created = expectOk(await p.admin.post('/api/v1/app', { name: 'billing' }));
    expect(created).toEqual({
      app_id: expect.any(String),
      name: 'billing',
      access_key: expect.any(String),
      secret_key: expect.any(String),
    });
    expect(created.access_key).toHaveLength(20);
    expect(created.secret_key).toHaveLength(40);

    const token = await tokenOf(created.app_id, created.access_key, created.secret_key);
    expect(expectOk(await client(ctx.app, token).get('/api/v1/project')).id).toBe(p.project.id);

    const list = expectOk(await p.api.get('/api/v1/apps'));
    expect(list.items).toContainEqual({
      app_id: created.app_id,
      name: 'billing',
      access_key: created.access_key,
      create_time: expect.any(Number),
    });
    expect(JSON.stringify(list)).not.toContain(created.secret_key);
  });

  it('lists apps oldest first', async () => {
    const a = expectOk(await p.api.post('/api/v1/app', { name: 'first' }));
    const b = expectOk(await p.api.post('/api/v1/app', { name: 'second' }));
    const ids = expectOk(await p.api.get('/api/v1/apps')).items.map((i: { app_id: string }) => i.app_id);
    expect(ids[0]).toBe(p.project.app.app_id);
    expect(ids.indexOf(a.app_id)).toBeLessThan(ids.indexOf(b.app_id));
  });

  it('resets a secret: the old one stops getting tokens, the new one works, the access key stays', async () => {
    const created = expectOk(await p.api.post('/api/v1/app', { name: 'rotating' }));
    const before = await tokenOf(created.app_id, created.access_key, created.secret_key);

    const reset = expectOk(await p.api.post(`/api/v1/app/${created.app_id}/secret_reset`));
    expect(reset).toEqual({ app_id: created.app_id, access_key: created.access_key, secret_key: expect.any(String) });
    expect(reset.secret_key).not.toBe(created.secret_key);

    expectFailure(
      await anon().post('/api/v1/access_token', {
        app_id: created.app_id,
        access_key: created.access_key,
        secret_key: created.secret_key,
      }),
      401,
    );
    await tokenOf(created.app_id, created.access_key, reset.secret_key);
    // Tokens issued before the reset are revoked with the old secret.
    expectFailure(await client(ctx.app, before).get('/api/v1/project'), 401);
  });

  it('deletes an app and its tokens answer 401 at once', async () => {
    const created = expectOk(await p.api.post('/api/v1/app', { name: 'doomed' }));
    const doomed = client(ctx.app, await tokenOf(created.app_id, created.access_key, created.secret_key));
    expectOk(await doomed.get('/api/v1/apps')); // the token is known (and cached) before the delete

    expect(expectOk(await p.api.delete(`/api/v1/app/${created.app_id}`))).toEqual({});

    expectFailure(await doomed.get('/api/v1/apps'), 401);
    expectFailure(
      await anon().post('/api/v1/access_token', {
        app_id: created.app_id,
        access_key: created.access_key,
        secret_key: created.secret_key,
      }),
      401,
    );
    const ids = expectOk(await p.api.get('/api/v1/apps')).items.map((i: { app_id: string }) => i.app_id);
    expect(ids).not.toContain(created.app_id);
  });

  it("answers 422 when deleting the project's last app, and the app keeps working", async () => {
    const solo = await createProject(ctx, 'solo');
    const body = expectFailure(await solo.admin.delete(`/api/v1/app/${solo.project.app.app_id}`), 422);
    expect(body.message).toMatch(/last/);
    expect(expectOk(await solo.api.get('/api/v1/apps')).items).toHaveLength(1);
  });

  it('lets an app delete another app and then refuses the last one', async () => {
    const duo = await createProject(ctx, 'duo');
    const second = expectOk(await duo.api.post('/api/v1/app', { name: 'second' }));
    expectOk(await duo.api.delete(`/api/v1/app/${second.app_id}`));
    expectFailure(await duo.api.delete(`/api/v1/app/${duo.project.app.app_id}`), 422);
  });

  it('keeps one app when the last two are deleted at the same time', async () => {
    const race = await createProject(ctx, 'race');
    const second = expectOk(await race.admin.post('/api/v1/app', { name: 'second' }));
    const results = await Promise.all([
      race.admin.delete(`/api/v1/app/${race.project.app.app_id}`),
      race.admin.delete(`/api/v1/app/${second.app_id}`),
    ]);
    expect(results.map((r) => (r.body.result ? 'ok' : r.body.errcode)).sort()).toEqual([422, 'ok']);
    expect(expectOk(await race.admin.get('/api/v1/apps')).items).toHaveLength(1);
  });

  it('answers 404 for an unknown app id', async () => {
    expectFailure(await p.api.post('/api/v1/app/000000000000000000000000/secret_reset'), 404);
    expectFailure(await p.api.delete('/api/v1/app/000000000000000000000000'), 404);
  });

  it("answers 404 for another project's app and leaves it untouched", async () => {
    const theirs = expectOk(await other.api.post('/api/v1/app', { name: 'theirs' }));
    expectFailure(await p.api.post(`/api/v1/app/${theirs.app_id}/secret_reset`), 404);
    expectFailure(await p.api.delete(`/api/v1/app/${theirs.app_id}`), 404);
    const ids = expectOk(await p.api.get('/api/v1/apps')).items.map((i: { app_id: string }) => i.app_id);
    expect(ids).not.toContain(theirs.app_id);
    await tokenOf(theirs.app_id, theirs.access_key, theirs.secret_key);
  });

  it('rejects a missing, empty or overlong name, and an overlong id, with 400', async () => {
    expectFailure(await p.api.post('/api/v1/app', {}), 400);
    expectFailure(await p.api.post('/api/v1/app', { name: '   ' }), 400);
    const body = expectFailure(await p.api.post('/api/v1/app', { name: 'x'.repeat(129) }), 400);
    expect(body.errors[0].path).toBe('name');
    expectFailure(await p.api.post(`/api/v1/app/${'x'.repeat(65)}/secret_reset`), 400);
  });

  it('answers 403 to a customer token on every app route', async () => {
    const customer = await customerClient(p);
    expectFailure(await customer.get('/api/v1/apps'), 403);
    expectFailure(await customer.post('/api/v1/app', { name: 'nope' }), 403);
    expectFailure(await customer.post(`/api/v1/app/${p.project.app.app_id}/secret_reset`), 403);
    expectFailure(await customer.delete(`/api/v1/app/${p.project.app.app_id}`), 403);
  });

  it('answers 401 without a token', async () => {
    expectFailure(await anon().get('/api/v1/apps'), 401);
    expectFailure(await anon().post('/api/v1/app', { name: 'x' }), 401);
  });
});
