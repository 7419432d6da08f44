import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestContext } from '../helpers/app.ts';
import { normalizeRoute, parseExamples, parseMarkdown, routesIn } from './markdown.ts';

/**
 * The routes of the OpenAPI document (built by the real app, with a platform token so the operator's
 * routes exist) and the endpoints of the docs are the same set: docs/http-api.md names every route by
 * an endpoint heading (`` #### `GET /api/v1/devices` ``), docs/device-protocol.md the device-facing ones
 * (`/device/v1/*`, `/app/device/v1/*`) anywhere in its text. Each endpoint of docs/http-api.md has an example.
 */
const read = (name: string) => readFileSync(new URL(`../../docs/${name}`, import.meta.url), 'utf8');
const httpApi = read('http-api.md');
const deviceProtocol = read('device-protocol.md');
const isDeviceFacing = (route: string) => /^\w+ \/(app\/)?device\/v1\//.test(route);

let ctx: TestContext;
let openapi: string[];

beforeAll(async () => {
  ctx = await createTestApp();
  const doc = (await ctx.app.inject({ method: 'GET', url: '/docs/json' })).json() as {
    paths: Record<string, Record<string, unknown>>;
  };
  openapi = Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.keys(ops).map((method) => `${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`),
  );
});
afterAll(() => ctx?.close());

/** Routes in the device protocol: `METHOD /path` anywhere (backticks, tables, request lines), query and parameter names aside. */
function deviceProtocolRoutes(): Set<string> {
  const found = [...deviceProtocol.matchAll(/\b(GET|POST|PUT|DELETE|PATCH) (\/(?:app\/)?device\/v1\/[^\s`?|]*)/g)];
  return new Set(found.map((m) => normalizeRoute(`${m[1]} ${m[2]}`)));
}

describe('the documented routes are the server routes', () => {
  const { headings } = parseMarkdown(httpApi);
  const documented = headings.flatMap((h) => h.routes);

  it('every route of the OpenAPI document is documented', () => {
    expect(openapi.length).toBeGreaterThan(100);
    for (const must of ['GET /livez', 'GET /readyz', 'GET /health', 'POST /platform/v1/projects'])
      expect(openapi).toContain(must);
    const inHttpApi = new Set(documented);
    const inDeviceProtocol = deviceProtocolRoutes();
    const missing = openapi.filter((r) =>
      isDeviceFacing(r) ? !inDeviceProtocol.has(normalizeRoute(r)) : !inHttpApi.has(r),
    );
    expect(missing).toEqual([]);
  });

  it('every documented endpoint is a route of the OpenAPI document, documented once', () => {
    const known = new Set(openapi);
    expect(documented.filter((r) => !known.has(r))).toEqual([]);
    expect(documented.filter((r, i) => documented.indexOf(r) !== i)).toEqual([]);
    expect(documented.filter(isDeviceFacing)).toEqual([]);
  });

  it('every endpoint of docs/http-api.md has an example of its own route', () => {
    const examples = parseExamples(httpApi);
    const without = documented.filter((route) => {
      const [method, path] = route.split(' ') as [string, string];
      const pattern = new RegExp(`^${path.replace(/:[a-z_]+/g, '[^/?]+')}(\\?.*)?$`);
      return !examples.some(
        (ex) => ex.method === method && ex.endpoint?.routes.includes(route) && pattern.test(ex.path),
      );
    });
    expect(without).toEqual([]);
  });

  it('device-facing routes are mentioned in docs/http-api.md only through device-protocol.md', () => {
    expect(routesIn(httpApi).filter(isDeviceFacing)).toEqual([]);
  });
});
