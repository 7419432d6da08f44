import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createProject,
  createTestApp,
  deviceWithToken,
  TEST_PLATFORM_TOKEN,
  type ProjectFixture,
  type TestContext,
} from '../helpers/app.ts';

/** Web pages of any origin may call the project API with a bearer token (http-api.md §2); the platform API answers none. */
let ctx: TestContext;
let p: ProjectFixture;
const origin = 'https://dashboard.example.com';

beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx);
});
afterAll(() => ctx?.close());

describe('without the platform API (no PLATFORM_TOKEN)', () => {
  it('still answers nothing under /platform/ to a web page', async () => {
    const bare = await createTestApp({ PLATFORM_TOKEN: undefined });
    try {
      const pre = await bare.app.inject({
        method: 'OPTIONS',
        url: '/platform/v1/projects',
        headers: { origin, 'access-control-request-method': 'POST' },
      });
      expect(pre.statusCode).toBe(404);
      expect(pre.headers['access-control-allow-origin']).toBeUndefined();
      const get = await bare.app.inject({ method: 'GET', url: '/platform/v1/projects', headers: { origin } });
      expect(get.statusCode).toBe(404);
      expect(get.headers['access-control-allow-origin']).toBeUndefined();
    } finally {
      await bare.close();
    }
  });
});

describe('cross-origin requests', () => {
  it('answers the preflight of a JSON login and of a call with a bearer token', async () => {
    for (const [url, headers] of [
      ['/api/v1/admin_login', 'content-type'],
      ['/api/v1/device/x/tags', 'authorization, content-type'],
    ] as const) {
      const res = await ctx.app.inject({
        method: 'OPTIONS',
        url,
        headers: {
          origin,
          'access-control-request-method': url.endsWith('tags') ? 'PUT' : 'POST',
          'access-control-request-headers': headers,
        },
      });
      expect(res.statusCode).toBe(204);
      expect(res.headers['access-control-allow-origin']).toBe('*');
      expect(String(res.headers['access-control-allow-methods'])).toMatch(/PUT/);
      expect(String(res.headers['access-control-allow-headers']).toLowerCase()).toContain('authorization');
      expect(res.headers['access-control-allow-credentials']).toBeUndefined();
    }
  });

  it('lets the page read answers, failures included', async () => {
    const ok = await ctx.app.inject({
      method: 'GET',
      url: '/api/v1/project',
      headers: { origin, authorization: `Bearer ${p.appToken}` },
    });
    expect(ok.statusCode).toBe(200);
    expect(ok.headers['access-control-allow-origin']).toBe('*');
    const denied = await ctx.app.inject({
      method: 'GET',
      url: '/api/v1/project',
      headers: { origin, authorization: 'Bearer nope' },
    });
    expect(denied.statusCode).toBe(401);
    expect(denied.headers['access-control-allow-origin']).toBe('*');
    expect(String(ok.headers['access-control-expose-headers'])).toContain('Retry-After');
  });

  it('lets the page read the file name of a CSV export and the request id', async () => {
    const d = await deviceWithToken(p);
    const res = await ctx.app.inject({
      method: 'GET',
      url: `/api/v1/device/${d.id}/attributes/export?identifiers=temperature`,
      headers: { origin, authorization: `Bearer ${p.appToken}` },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-disposition']).toBe(`attachment; filename="${d.id}-attributes.csv"`);
    expect(res.headers['access-control-allow-origin']).toBe('*');
    const exposed = String(res.headers['access-control-expose-headers'])
      .toLowerCase()
      .split(/\s*,\s*/);
    expect(exposed).toEqual(expect.arrayContaining(['content-disposition', 'x-request-id', 'retry-after']));
  });

  it('gives the platform API to no web page', async () => {
    const res = await ctx.app.inject({
      method: 'GET',
      url: '/platform/v1/projects',
      headers: { origin, authorization: `Bearer ${TEST_PLATFORM_TOKEN}` },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
    const pre = await ctx.app.inject({
      method: 'OPTIONS',
      url: '/platform/v1/projects',
      headers: { origin, 'access-control-request-method': 'POST' },
    });
    expect(pre.headers['access-control-allow-origin']).toBeUndefined();
    expect(pre.statusCode).toBe(404);
    // A path that does not exist there, and one spelled with an escape: no header either.
    for (const url of ['/platform/v1/nothing', '/%70latform/v1/projects']) {
      const res = await ctx.app.inject({
        method: 'GET',
        url,
        headers: { origin, authorization: `Bearer ${TEST_PLATFORM_TOKEN}` },
      });
      expect(res.headers['access-control-allow-origin']).toBeUndefined();
    }
    // Failures of the platform API too: a page reads nothing of it.
    const denied = await ctx.app.inject({ method: 'GET', url: '/platform/v1/projects', headers: { origin } });
    expect(denied.statusCode).toBe(401);
    expect(denied.headers['access-control-allow-origin']).toBeUndefined();
  });
});
