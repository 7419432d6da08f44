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

let ctx: TestContext;
let p: ProjectFixture;

beforeAll(async () => {
  ctx = await createTestApp({ BODY_LIMIT: 64 * 1024 });
  p = await createProject(ctx);
});
afterAll(() => ctx?.close());

const raw = (
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  url: string,
  payload?: string,
  headers: Record<string, string> = {},
) =>
  ctx.app.inject({
    method,
    url,
    ...(payload !== undefined ? { payload } : {}),
    headers: { authorization: `Bearer ${p.appToken}`, ...headers },
  });

describe('unknown routes', () => {
  it('answer 404 {"message":"Request invalid"}', async () => {
    for (const [method, url] of [
      ['GET', '/nope'],
      ['GET', '/api/v1/no_such_thing'],
      ['POST', '/api/v1/devices'],
      ['PATCH', '/api/v1/device/abc'],
    ] as const) {
      const res = await raw(method, url);
      expect(res.statusCode, `${method} ${url}`).toBe(404);
      expect(res.json()).toEqual({ message: 'Request invalid' });
    }
  });
});

describe('request bodies', () => {
  it('answers invalid JSON with 404 and the documented body', async () => {
    for (const payload of ['{"name":', '{name: "x"}', 'not json', '{"a":1}}']) {
      const res = await raw('POST', '/api/v1/device', payload, { 'content-type': 'application/json' });
      expect(res.statusCode, payload).toBe(404);
      expect(res.json()).toEqual({ result: false, message: 'Invalid JSON message', errcode: 400 });
    }
  });

  it('reads a JSON body whatever its content type (curl -d sends form encoding)', async () => {
    const res = await raw('POST', '/api/v1/device', '{"name":"from curl"}', {
      'content-type': 'application/x-www-form-urlencoded',
    });
    expect(res.json()).toMatchObject({ result: true, info: { name: 'from curl' } });
  });

  it('answers a missing body, or a body of the wrong JSON type, with a 400 failure', async () => {
    for (const payload of [undefined, '', '[]', '"name"', '42', 'null']) {
      const res = await raw('POST', '/api/v1/device', payload, { 'content-type': 'application/json' });
      expect(res.statusCode, String(payload)).toBe(200);
      expect(res.json()).toMatchObject({ result: false, errcode: 400 });
    }
  });

  it('lists field problems with their paths', async () => {
    const body = expectFailure(await p.api.post('/api/v1/device', { name: 123, tags: { a: { nested: true } } }), 400);
    expect(body.errors.map((e: { path: string }) => e.path).sort()).toEqual(['name', 'tags.a']);
    expect(body.message).toMatch(/name/);
  });

  it('rejects over-long strings and empty names', async () => {
    expectFailure(await p.api.post('/api/v1/device', { name: 'x'.repeat(129) }), 400);
    expectFailure(await p.api.post('/api/v1/device', { name: '   ' }), 400);
    expectFailure(await p.api.post('/api/v1/device', { name: 'ok', descr: 'd'.repeat(1025) }), 400);
    expectFailure(await p.api.post('/api/v1/device', { name: 'ok', tags: { ['k'.repeat(65)]: 'v' } }), 400);
  });

  it('answers a body over the size limit with a 400 failure, not a crash', async () => {
    const res = await raw('POST', '/api/v1/device', JSON.stringify({ name: 'big', descr: 'x'.repeat(100 * 1024) }), {
      'content-type': 'application/json',
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ result: false, errcode: 400, message: expect.stringMatching(/larger than/) });
  });

  it('refuses NUL characters in bodies and queries instead of failing in the database', async () => {
    expectFailure(await p.api.post('/api/v1/device', { name: 'a\u0000b' }), 400);
    expectFailure(await p.api.get('/api/v1/devices?device_key=%00'), 400);
    expectFailure(await p.api.get('/api/v1/device/ab%00cd'), 400);
    // an escaped backslash before u0000 is ordinary text
    expectOk(await p.api.post('/api/v1/device', { name: 'a\\u0000b' }));
  });

  it('strips prototype-poisoning keys', async () => {
    const res = await raw(
      'POST',
      '/api/v1/device',
      '{"name":"proto","__proto__":{"polluted":true},"tags":{"__proto__":"x"}}',
      { 'content-type': 'application/json' },
    );
    expect(res.json()).toMatchObject({ result: true });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('answers unknown ids with 404 failures', async () => {
    expectFailure(await p.api.get('/api/v1/device/does-not-exist'), 404);
    expectFailure(await p.api.get(`/api/v1/device/${'x'.repeat(65)}`), 400);
  });
});

describe('authentication', () => {
  it('answers a missing or bad bearer token with HTTP 401 and the failure body', async () => {
    const anon = client(ctx.app);
    expect(expectFailure(await anon.get('/api/v1/project'), 401).message).toMatch(/Authorization/);
    expectFailure(await client(ctx.app, 'garbage').get('/api/v1/project'), 401);
    const res = await ctx.app.inject({
      method: 'GET',
      url: '/api/v1/project',
      headers: { authorization: `Basic ${p.appToken}` },
    });
    expect(res.statusCode).toBe(401);
  });

  it('checks the token before the body, so a bad body without a token is a 401', async () => {
    const res = await ctx.app.inject({
      method: 'POST',
      url: '/api/v1/device',
      payload: '{bad',
      headers: { 'content-type': 'application/json' },
    });
    expect(res.statusCode).toBe(401);
  });
});

describe('project', () => {
  it('reads and updates the project of the token', async () => {
    expect(expectOk(await p.api.get('/api/v1/project'))).toEqual({
      id: p.project.id,
      name: 'test project',
      descr: '',
      tags: {},
    });
    expectOk(await p.admin.put('/api/v1/project', { descr: 'plant A', tags: { site: 'A' } }));
    expect(expectOk(await p.api.get('/api/v1/project'))).toEqual({
      id: p.project.id,
      name: 'test project',
      descr: 'plant A',
      tags: { site: 'A' },
    });
    expectFailure(await p.api.put('/api/v1/project', {}), 400);
  });
});

describe('review findings', () => {
  it('refuses lone UTF-16 surrogates in bodies, keys and queries with a 400 (PostgreSQL cannot store them)', async () => {
    const d = expectOk(await p.api.post('/api/v1/device', { name: 'surrogates' }));
    for (const payload of ['{"tags":{"\\ud800":"x"}}', '{"tags":{"k":"\\udfff"}}']) {
      const res = await raw('PUT', `/api/v1/device/${d.id}/tags`, payload, { 'content-type': 'application/json' });
      expect(res.json(), payload).toMatchObject({
        result: false,
        errcode: 400,
        message: expect.stringMatching(/well-formed/),
      });
    }
    expect(
      (await raw('POST', '/api/v1/device', '{"name":"\\ud800"}', { 'content-type': 'application/json' })).json(),
    ).toMatchObject({ errcode: 400 });
    // a proper surrogate pair is an ordinary character
    expectOk(
      await raw('PUT', `/api/v1/device/${d.id}/tags`, '{"tags":{"emoji":"\\ud83d\\ude00"}}', {
        'content-type': 'application/json',
      }).then((r) => ({ status: r.statusCode, body: r.json(), headers: r.headers })),
    );
    expect(expectOk(await p.api.get(`/api/v1/device/${d.id}`)).tags).toEqual({ emoji: '😀' });
  });

  it('answers malformed URLs in the envelope', async () => {
    const res = await raw('GET', '/api/v1/device/%ff');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ result: false, errcode: 400 });
  });

  it('treats empty list filters as no filter', async () => {
    const all = expectOk(await p.api.get('/api/v1/devices'));
    const blank = expectOk(await p.api.get('/api/v1/devices?type=&group=&groups=&device_key='));
    expect(blank.total).toBe(all.total);
  });
});
