import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestContext } from '../helpers/app.ts';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestApp();
});
afterAll(() => ctx?.close());

describe('OpenAPI description', () => {
  it('describes every route of the API, generated from the zod schemas', async () => {
    const res = await ctx.app.inject({ method: 'GET', url: '/docs/json' });
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toMatch(/^3\./);
    const documented = new Set<string>();
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
      for (const method of Object.keys(ops))
        documented.add(`${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`);
    }
    expect(ctx.app.apiRoutes.length).toBeGreaterThan(20);
    const missing = ctx.app.apiRoutes.map((r) => `${r.method} ${r.url}`).filter((r) => !documented.has(r));
    expect(missing).toEqual([]);
  });

  it('documents request bodies and the success envelope', async () => {
    const doc = (await ctx.app.inject({ method: 'GET', url: '/docs/json' })).json();
    const create = doc.paths['/api/v1/device'].post;
    const body = create.requestBody.content['application/json'].schema;
    expect(body.required).toContain('name');
    expect(body.properties.name.maxLength).toBe(128);
    const ok = create.responses['200'].content['application/json'].schema;
    expect(Object.keys(ok.properties)).toEqual(['result', 'info']);
    expect(create.security).toEqual([{ bearer: [] }]);
  });

  it('resolves every $ref inside the document', async () => {
    const doc = (await ctx.app.inject({ method: 'GET', url: '/docs/json' })).json();
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]!);
    const dangling = refs.filter((name) => !(name in (doc.components?.schemas ?? {})));
    expect(dangling).toEqual([]);
  });

  it('serves the interactive documentation at /docs', async () => {
    const res = await ctx.app.inject({ method: 'GET', url: '/docs/' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/html/);
  });
});
