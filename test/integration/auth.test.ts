import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { customers } from '../../src/db/schema/index.ts';
import { newId } from '../../src/lib/ids.ts';
import { hashSecret } from '../../src/lib/passwords.ts';
import {
  client,
  createProject,
  createTestApp,
  expectFailure,
  expectOk,
  type ProjectFixture,
  type TestContext,
} from '../helpers/app.ts';

let ctx: TestContext;
let p: ProjectFixture;

beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx, 'auth');
});
afterAll(() => ctx?.close());

const anon = () => client(ctx.app);
const claimsOf = (token: string) =>
  JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
const withAuthorization = (value: string) => anon().call('GET', '/api/v1/project', undefined, { authorization: value });
const nowSeconds = () => Math.floor(Date.now() / 1000);
/** Signs arbitrary claims with the server's own key (the typed payload admits only pid/kind/sub). */
const signRaw = (claims: Record<string, unknown>) => ctx.app.jwt.sign(claims as never);

/** The failure body of http-api.md §1 with HTTP 401. */
function expect401(res: Awaited<ReturnType<typeof withAuthorization>>, message?: RegExp) {
  const body = expectFailure(res, 401);
  expect(body).toEqual({ result: false, errcode: 401, message: expect.any(String), errors: [] });
  if (message) expect(body.message).toMatch(message);
}

async function makeCustomer(f: ProjectFixture, password: string) {
  const account = `cust-${newId()}`;
  const now = Date.now();
  await ctx.database.db.insert(customers).values({
    id: newId(now),
    projectId: f.project.id,
    account,
    passwordHash: await hashSecret(password),
    name: 'c',
    createTime: now,
    updateTime: now,
  });
  return account;
}

describe('logins', () => {
  it('access_token gives a one-day token naming the project and the app', async () => {
    const info = expectOk(await anon().post('/api/v1/access_token', p.project.app));
    expect(info).toEqual({ access_token: expect.any(String), expires_in: 86_400 });
    const claims = claimsOf(info.access_token);
    expect(claims).toMatchObject({ pid: p.project.id, kind: 'app', sub: p.project.app.app_id });
    expect(Number(claims.exp) - Number(claims.iat)).toBe(86_400);
    expect(expectOk(await client(ctx.app, info.access_token).get('/api/v1/project')).id).toBe(p.project.id);
  });

  it('admin_login gives a seven-day administrator token', async () => {
    const info = expectOk(
      await anon().post('/api/v1/admin_login', { app_id: p.project.app.app_id, ...p.project.admin }),
    );
    expect(info).toEqual({ access_token: expect.any(String), expires_in: 7 * 86_400 });
    const claims = claimsOf(info.access_token);
    expect(claims).toMatchObject({ pid: p.project.id, kind: 'admin' });
    expect(Number(claims.exp) - Number(claims.iat)).toBe(7 * 86_400);
    expect(expectOk(await client(ctx.app, info.access_token).get('/api/v1/admin')).account).toBe('admin');
  });

  it('customer_login gives a seven-day customer token that manage routes refuse', async () => {
    const account = await makeCustomer(p, 'customer-password');
    const info = expectOk(
      await anon().post('/api/v1/customer_login', {
        app_id: p.project.app.app_id,
        account,
        password: 'customer-password',
      }),
    );
    expect(info).toEqual({ access_token: expect.any(String), expires_in: 7 * 86_400 });
    expect(claimsOf(info.access_token)).toMatchObject({ pid: p.project.id, kind: 'customer' });
    const customer = client(ctx.app, info.access_token);
    expect(expectOk(await customer.get('/api/v1/project')).id).toBe(p.project.id);
    expectFailure(await customer.get('/api/v1/apps'), 403);
  });

  it('answers 401 to a wrong secret, a wrong access key or an unknown app', async () => {
    const { app_id, access_key, secret_key } = p.project.app;
    expect401(await anon().post('/api/v1/access_token', { app_id, access_key, secret_key: `${secret_key}x` }));
    expect401(await anon().post('/api/v1/access_token', { app_id, access_key: `${access_key}x`, secret_key }));
    expect401(
      await anon().post('/api/v1/access_token', { app_id: '000000000000000000000000', access_key, secret_key }),
    );
  });

  it('answers 401 to a wrong password, an unknown account or an unknown app at admin_login', async () => {
    const app_id = p.project.app.app_id;
    expect401(
      await anon().post('/api/v1/admin_login', { app_id, account: 'admin', password: `${p.project.admin.password}x` }),
      /account or password/,
    );
    expect401(
      await anon().post('/api/v1/admin_login', { app_id, account: 'nobody', password: p.project.admin.password }),
    );
    expect401(await anon().post('/api/v1/admin_login', { app_id: '000000000000000000000000', ...p.project.admin }));
  });

  it("answers 401 at customer_login to a wrong password and to an administrator's account", async () => {
    const account = await makeCustomer(p, 'customer-password');
    const app_id = p.project.app.app_id;
    expect401(await anon().post('/api/v1/customer_login', { app_id, account, password: 'wrong-password' }));
    expect401(await anon().post('/api/v1/customer_login', { app_id, ...p.project.admin }));
  });

  it("does not let one project's app log in another project's administrator", async () => {
    const other = await createProject(ctx, 'other');
    expect401(await anon().post('/api/v1/admin_login', { app_id: p.project.app.app_id, ...other.project.admin }));
  });

  it('answers 400 to a login body with missing fields', async () => {
    const body = expectFailure(await anon().post('/api/v1/access_token', { app_id: p.project.app.app_id }), 400);
    expect(body.errors.map((e: { path: string }) => e.path)).toEqual(
      expect.arrayContaining(['access_key', 'secret_key']),
    );
    expectFailure(await anon().post('/api/v1/admin_login', {}), 400);
  });
});

describe('bearer tokens', () => {
  it('answers 401 without an Authorization header', async () => {
    expect401(await anon().get('/api/v1/project'), /Missing Authorization/);
  });

  it('answers 401 to Basic credentials, a bare "Bearer" and garbage', async () => {
    expect401(await withAuthorization(`Basic ${Buffer.from('admin:pw').toString('base64')}`), /Bearer/);
    expect401(await withAuthorization('Bearer'));
    expect401(await withAuthorization('Bearer not-a-jwt'), /Invalid access token/);
    expect401(await withAuthorization(`Bearer ${p.appToken} extra`));
    expect401(await withAuthorization(p.appToken));
  });

  it('accepts the scheme in any case', async () => {
    expectOk(await withAuthorization(`bearer ${p.appToken}`));
  });

  /** The project's app token, issued an hour ago, expiring at `exp` (seconds). */
  const appTokenExpiring = (exp: number) =>
    signRaw({
      pid: p.project.id,
      kind: 'app',
      sub: p.project.app.app_id,
      ts: Date.now() - 3_600_000,
      iat: nowSeconds() - 3600,
      exp,
    });

  it('answers 401 to an expired token', async () => {
    expect401(await withAuthorization(`Bearer ${appTokenExpiring(nowSeconds() - 10)}`), /expired/);
    // The same claims with a future expiry work: only the expiry differs.
    expectOk(await withAuthorization(`Bearer ${appTokenExpiring(nowSeconds() + 60)}`));
  });

  it('answers 401 to a token that expired after it was accepted (verified tokens are cached, never past exp)', async () => {
    const exp = nowSeconds() + 30;
    const token = appTokenExpiring(exp);
    expectOk(await withAuthorization(`Bearer ${token}`));
    expectOk(await withAuthorization(`Bearer ${token}`));
    vi.useFakeTimers({ toFake: ['Date'], now: exp * 1000 + 1000 });
    try {
      expect401(await withAuthorization(`Bearer ${token}`), /expired/);
    } finally {
      vi.useRealTimers();
    }
  });

  it('answers 401 to a token signed with another secret', async () => {
    const [header, payload] = p.appToken.split('.');
    const forged = `${header}.${payload}.${createHmac('sha256', 'another-secret-0123456789abcdef').update(`${header}.${payload}`).digest('base64url')}`;
    expect401(await withAuthorization(`Bearer ${forged}`), /Invalid access token/);
  });

  it('answers 401 to an unsigned (alg "none") token', async () => {
    const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const unsigned = `${enc({ alg: 'none', typ: 'JWT' })}.${enc(claimsOf(p.appToken))}.`;
    expect401(await withAuthorization(`Bearer ${unsigned}`));
  });

  it('answers 401 to a validly signed token without the project claims', async () => {
    const bare = signRaw({ sub: p.project.app.app_id });
    expect401(await withAuthorization(`Bearer ${bare}`));
  });

  it("answers 401 to a token whose principal does not exist in the token's project", async () => {
    const other = await createProject(ctx, 'elsewhere');
    // A real app id, but claimed for another project: the principal must exist in that project.
    const crossed = ctx.app.jwt.sign(
      { pid: other.project.id, kind: 'app', sub: p.project.app.app_id, ts: Date.now() },
      { expiresIn: 60 },
    );
    expect401(await withAuthorization(`Bearer ${crossed}`), /revoked/);
  });

  it('answers 401 to every token of a deleted project', async () => {
    const doomed = await createProject(ctx, 'doomed');
    expectOk(await doomed.api.get('/api/v1/project'));
    await ctx.services.projects.delete(doomed.project.id);
    expect401(await doomed.api.get('/api/v1/project'));
    expect401(await doomed.admin.get('/api/v1/admin'));
  });
});

describe('login rate limit', () => {
  let limited: TestContext;
  beforeAll(async () => {
    limited = await createTestApp({ LOGIN_RATE_LIMIT: 3 });
  });
  afterAll(() => limited?.close());

  it('answers the 4th login in the window with HTTP 429, errcode 429 and Retry-After', async () => {
    const project = await limited.services.projects.create({ name: 'limited' });
    const login = () => client(limited.app).post('/api/v1/access_token', project.app);
    for (let i = 0; i < 3; i++) expectOk(await login());

    const res = await login();
    const body = expectFailure(res, 429);
    expect(body).toEqual({
      result: false,
      errcode: 429,
      message: expect.stringMatching(/Too many requests/),
      errors: [],
    });
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    expect(Number(res.headers['retry-after'])).toBeLessThanOrEqual(60);
  });

  it('counts failed logins too', async () => {
    const project = await limited.services.projects.create({ name: 'brute' });
    const attempt = () =>
      client(limited.app).post('/api/v1/admin_login', {
        app_id: project.app.app_id,
        account: 'admin',
        password: 'guess-guess',
      });
    for (let i = 0; i < 3; i++) expect401(await attempt());
    expectFailure(await attempt(), 429);
    // Even the right password is refused until the window ends.
    expectFailure(
      await client(limited.app).post('/api/v1/admin_login', { app_id: project.app.app_id, ...project.admin }),
      429,
    );
  });

  it('does not limit calls made with a token', async () => {
    const project = await limited.services.projects.create({ name: 'busy' });
    const token = limited.app.jwt.sign(
      { pid: project.id, kind: 'app', sub: project.app.app_id, ts: Date.now() },
      { expiresIn: 60 },
    );
    const api = client(limited.app, token);
    for (let i = 0; i < 6; i++) expectOk(await api.get('/api/v1/project'));
  });
});

describe('credential changes', () => {
  it('revoke the tokens issued before an administrator or customer password change', async () => {
    const ctx2 = await createTestApp();
    try {
      const f = await createProject(ctx2, 'rotation');
      const ops = expectOk(await f.api.post('/api/v1/administrator', { account: 'ops', password: 'password-one' }));
      const login = async (path: string, account: string, password: string) =>
        expectOk(await client(ctx2.app).post(path, { app_id: f.project.app.app_id, account, password }))
          .access_token as string;
      const adminBefore = client(ctx2.app, await login('/api/v1/admin_login', 'ops', 'password-one'));
      expectOk(await adminBefore.get('/api/v1/admin'));
      expectOk(await f.api.put(`/api/v1/administrator/${ops.id}/pwd`, { password: 'password-two' }));
      expectFailure(await adminBefore.get('/api/v1/admin'), 401);
      expectOk(await client(ctx2.app, await login('/api/v1/admin_login', 'ops', 'password-two')).get('/api/v1/admin'));

      const cust = expectOk(
        await f.api.post('/api/v1/customer', { name: 'C', account: 'c1', password: 'password-one' }),
      );
      const custBefore = client(ctx2.app, await login('/api/v1/customer_login', 'c1', 'password-one'));
      expectOk(await custBefore.get('/api/v1/devices'));
      expectOk(await f.api.put(`/api/v1/customer/${cust.id}/pwd`, { password: 'password-two' }));
      expectFailure(await custBefore.get('/api/v1/devices'), 401);
      // changing other fields does not revoke anything
      const custAfter = client(ctx2.app, await login('/api/v1/customer_login', 'c1', 'password-two'));
      expectOk(await f.api.put(`/api/v1/customer/${cust.id}/info`, { name: 'renamed' }));
      expectOk(await custAfter.get('/api/v1/devices'));
    } finally {
      await ctx2.close();
    }
  });
});
