import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../src/lib/ids.ts';
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
  [p, other] = await Promise.all([createProject(ctx, 'admins'), createProject(ctx, 'other')]);
});
afterAll(() => ctx?.close());

const anon = () => client(ctx.app);
const login = (f: ProjectFixture, account: string, password: string) =>
  anon().post('/api/v1/admin_login', { app_id: f.project.app.app_id, account, password });
const unique = (prefix: string) => `${prefix}-${newId().slice(-8)}`;

/** A customer token of the fixture's project, made with direct SQL so this file does not depend on the customers area. */
const customerClient = (f: ProjectFixture) => addCustomerClient(ctx, f);

describe('GET /api/v1/admin', () => {
  it('reads the calling administrator with the documented fields', async () => {
    const me = expectOk(await p.admin.get('/api/v1/admin'));
    expect(me).toEqual({ id: expect.any(String), account: 'admin', name: 'Administrator', email: '', tags: {} });
  });

  it('answers 403 to an app token', async () => {
    const body = expectFailure(await p.api.get('/api/v1/admin'), 403);
    expect(body.message).toMatch(/admin_login/);
  });

  it('answers 403 to a customer token and 401 without a token', async () => {
    expectFailure(await (await customerClient(p)).get('/api/v1/admin'), 403);
    expectFailure(await anon().get('/api/v1/admin'), 401);
  });
});

describe('administrators', () => {
  it('lists the project administrator with its creation time', async () => {
    const fresh = await createProject(ctx, 'fresh');
    const me = expectOk(await fresh.admin.get('/api/v1/admin'));
    expect(expectOk(await fresh.api.get('/api/v1/administrators'))).toEqual({
      items: [{ ...me, create_time: expect.any(Number) }],
    });
  });

  it('creates an administrator who can log in and read itself', async () => {
    const account = unique('ops');
    const created = expectOk(
      await p.api.post('/api/v1/administrator', {
        account,
        password: 'ops-password-1',
        name: 'Ops',
        email: 'ops@example.com',
        tags: { team: 'night' },
      }),
    );
    expect(created).toEqual({ id: expect.any(String), account });

    const token = expectOk(await login(p, account, 'ops-password-1'));
    expect(token).toEqual({ access_token: expect.any(String), expires_in: 7 * 86_400 });
    const me = expectOk(await client(ctx.app, token.access_token).get('/api/v1/admin'));
    expect(me).toEqual({ id: created.id, account, name: 'Ops', email: 'ops@example.com', tags: { team: 'night' } });

    const list = expectOk(await p.admin.get('/api/v1/administrators'));
    expect(list.items).toContainEqual({ ...me, create_time: expect.any(Number) });
    expect(JSON.stringify(list)).not.toMatch(/password|hash/i);
  });

  it('creates an administrator with only account and password', async () => {
    const account = unique('bare');
    const created = expectOk(await p.api.post('/api/v1/administrator', { account, password: 'bare-password' }));
    const row = expectOk(await p.api.get('/api/v1/administrators')).items.find(
      (a: { id: string }) => a.id === created.id,
    );
    expect(row).toEqual({ id: created.id, account, name: '', email: '', tags: {}, create_time: expect.any(Number) });
  });

  it('rejects a duplicate account with 409, but the same account in another project is fine', async () => {
    const account = unique('dup');
    expectOk(await p.api.post('/api/v1/administrator', { account, password: 'dup-password' }));
    const body = expectFailure(await p.api.post('/api/v1/administrator', { account, password: 'dup-password' }), 409);
    expect(body.errors).toEqual([{ path: 'account', message: 'already exists' }]);
    expectFailure(await p.api.post('/api/v1/administrator', { account: 'admin', password: 'dup-password' }), 409);
    expectOk(await other.api.post('/api/v1/administrator', { account, password: 'dup-password' }));
  });

  it('rejects invalid input with 400 and the field path', async () => {
    const cases: [unknown, string][] = [
      [{ password: 'long-enough' }, 'account'],
      [{ account: '  ', password: 'long-enough' }, 'account'],
      [{ account: 'x'.repeat(65), password: 'long-enough' }, 'account'],
      [{ account: unique('v') }, 'password'],
      [{ account: unique('v'), password: 'short' }, 'password'],
      [{ account: unique('v'), password: 'long-enough', email: 'not-an-email' }, 'email'],
      [{ account: unique('v'), password: 'long-enough', name: 'n'.repeat(129) }, 'name'],
      [{ account: unique('v'), password: 'long-enough', tags: { k: 1 } }, 'tags.k'],
    ];
    for (const [payload, path] of cases) {
      const body = expectFailure(await p.api.post('/api/v1/administrator', payload), 400);
      expect(body.errors.map((e: { path: string }) => e.path)).toContain(path);
    }
  });

  it("updates an administrator's name, email and tags (tags replaced)", async () => {
    const account = unique('info');
    const { id } = expectOk(
      await p.api.post('/api/v1/administrator', {
        account,
        password: 'info-password',
        name: 'Before',
        tags: { a: '1', b: '2' },
      }),
    );
    expect(
      expectOk(
        await p.api.put(`/api/v1/administrator/${id}/info`, {
          name: 'After',
          email: 'after@example.com',
          tags: { c: '3' },
        }),
      ),
    ).toEqual({});
    const row = expectOk(await p.api.get('/api/v1/administrators')).items.find((a: { id: string }) => a.id === id);
    expect(row).toEqual({
      id,
      account,
      name: 'After',
      email: 'after@example.com',
      tags: { c: '3' },
      create_time: expect.any(Number),
    });

    expectOk(await p.admin.put(`/api/v1/administrator/${id}/info`, { email: '' }));
    const again = expectOk(await p.api.get('/api/v1/administrators')).items.find((a: { id: string }) => a.id === id);
    expect(again).toMatchObject({ name: 'After', email: '', tags: { c: '3' } });
  });

  it('answers 400 to an info update with no field or a bad email', async () => {
    const { id } = expectOk(
      await p.api.post('/api/v1/administrator', { account: unique('empty'), password: 'empty-password' }),
    );
    expectFailure(await p.api.put(`/api/v1/administrator/${id}/info`, {}), 400);
    expectFailure(await p.api.put(`/api/v1/administrator/${id}/info`, { email: 'nope' }), 400);
  });

  it('changes a password: the old one stops working, the new one logs in', async () => {
    const account = unique('pwd');
    const { id } = expectOk(await p.api.post('/api/v1/administrator', { account, password: 'first-password' }));
    expect(expectOk(await p.api.put(`/api/v1/administrator/${id}/pwd`, { password: 'second-password' }))).toEqual({});
    expectFailure(await login(p, account, 'first-password'), 401);
    expectOk(await login(p, account, 'second-password'));
    expectFailure(await p.api.put(`/api/v1/administrator/${id}/pwd`, { password: 'short' }), 400);
    expectFailure(await p.api.put(`/api/v1/administrator/${id}/pwd`, {}), 400);
  });

  it('deletes an administrator: its tokens answer 401 at once and it can no longer log in', async () => {
    const account = unique('gone');
    const { id } = expectOk(await p.api.post('/api/v1/administrator', { account, password: 'gone-password' }));
    const gone = client(ctx.app, expectOk(await login(p, account, 'gone-password')).access_token);
    expectOk(await gone.get('/api/v1/admin'));

    expect(expectOk(await p.admin.delete(`/api/v1/administrator/${id}`))).toEqual({});

    expectFailure(await gone.get('/api/v1/admin'), 401);
    expectFailure(await login(p, account, 'gone-password'), 401);
    const ids = expectOk(await p.api.get('/api/v1/administrators')).items.map((a: { id: string }) => a.id);
    expect(ids).not.toContain(id);
  });

  it("answers 422 when deleting the project's last administrator", async () => {
    const solo = await createProject(ctx, 'solo');
    const me = expectOk(await solo.admin.get('/api/v1/admin'));
    const body = expectFailure(await solo.api.delete(`/api/v1/administrator/${me.id}`), 422);
    expect(body.message).toMatch(/last administrator/);
    expectOk(await solo.admin.get('/api/v1/admin'));
  });

  it('lets an administrator delete itself when another remains', async () => {
    const duo = await createProject(ctx, 'duo');
    const me = expectOk(await duo.admin.get('/api/v1/admin'));
    expectOk(await duo.api.post('/api/v1/administrator', { account: 'second', password: 'second-password' }));
    expectOk(await duo.admin.delete(`/api/v1/administrator/${me.id}`));
    expectFailure(await duo.admin.get('/api/v1/admin'), 401);
    expectOk(await login(duo, 'second', 'second-password'));
  });

  it('keeps one administrator when the last two are deleted at the same time', async () => {
    const race = await createProject(ctx, 'race');
    const me = expectOk(await race.admin.get('/api/v1/admin'));
    const second = expectOk(
      await race.api.post('/api/v1/administrator', { account: 'second', password: 'second-password' }),
    );
    const results = await Promise.all([
      race.api.delete(`/api/v1/administrator/${me.id}`),
      race.api.delete(`/api/v1/administrator/${second.id}`),
    ]);
    expect(results.map((r) => (r.body.result ? 'ok' : r.body.errcode)).sort()).toEqual([422, 'ok']);
    expect(expectOk(await race.api.get('/api/v1/administrators')).items).toHaveLength(1);
  });

  it('answers 404 for an unknown administrator id', async () => {
    const unknown = '000000000000000000000000';
    expectFailure(await p.api.put(`/api/v1/administrator/${unknown}/info`, { name: 'x' }), 404);
    expectFailure(await p.api.put(`/api/v1/administrator/${unknown}/pwd`, { password: 'whatever-long' }), 404);
    expectFailure(await p.api.delete(`/api/v1/administrator/${unknown}`), 404);
  });

  it("answers 404 for another project's administrator and leaves it untouched", async () => {
    const account = unique('theirs');
    const { id } = expectOk(
      await other.api.post('/api/v1/administrator', { account, password: 'theirs-password', name: 'Theirs' }),
    );
    expectFailure(await p.api.put(`/api/v1/administrator/${id}/info`, { name: 'hijacked' }), 404);
    expectFailure(await p.api.put(`/api/v1/administrator/${id}/pwd`, { password: 'hijacked-password' }), 404);
    expectFailure(await p.api.delete(`/api/v1/administrator/${id}`), 404);

    const ids = expectOk(await p.api.get('/api/v1/administrators')).items.map((a: { id: string }) => a.id);
    expect(ids).not.toContain(id);
    const row = expectOk(await other.api.get('/api/v1/administrators')).items.find((a: { id: string }) => a.id === id);
    expect(row.name).toBe('Theirs');
    expectOk(await login(other, account, 'theirs-password'));
  });

  it('answers 403 to a customer token on every management route', async () => {
    const customer = await customerClient(p);
    const me = expectOk(await p.admin.get('/api/v1/admin'));
    expectFailure(await customer.get('/api/v1/administrators'), 403);
    expectFailure(
      await customer.post('/api/v1/administrator', { account: unique('c'), password: 'customer-made' }),
      403,
    );
    expectFailure(await customer.put(`/api/v1/administrator/${me.id}/info`, { name: 'x' }), 403);
    expectFailure(await customer.put(`/api/v1/administrator/${me.id}/pwd`, { password: 'customer-made' }), 403);
    expectFailure(await customer.delete(`/api/v1/administrator/${me.id}`), 403);
  });
});
