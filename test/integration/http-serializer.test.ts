import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { DeviceList } from '../../src/http/routes/devices/devices.schema.ts';
import { envelope } from '../../src/http/routes/route.ts';
import { compileSerializer, serializerCompiler } from '../../src/http/serializer.ts';
import { createTestApp, type TestContext } from '../helpers/app.ts';

const list = envelope(DeviceList);
const route = (schema: unknown) => ({ schema, method: 'GET', url: '/api/v1/devices' });
const zodJson = (schema: z.ZodType, data: unknown) => JSON.stringify(z.encode(schema, data as never));

const device = (i: number, extra: Record<string, unknown> = {}) => ({
  id: `dev${i}`,
  name: `device "${i}" \u2603 \n`,
  descr: '',
  device_key: `key${i}`,
  device_code: '',
  tags: { floor: '2', room: 'a"b' },
  create_time: Date.now() - i * 1000,
  alarm: i % 2 ? {} : { level: 2, since: Date.now() - 60_000, rule: i % 4 ? 'r1' : null },
  active: { attributes: Date.now() - 5_000 },
  online: i % 3 === 0,
  type: '',
  type_info: { id: '', name: '', conn_type: 'mqtt', conn_protocol: 'json' },
  ...extra,
});
const page = (items: unknown[]) => ({ result: true, info: { items, total: 1234, page_total: 62 } });

describe('compiled response serializer (src/http/serializer.ts)', () => {
  it('writes what zod writes, byte for byte', () => {
    const { serialize, compiled } = compileSerializer(route(list));
    expect(compiled).toBe(true);
    const data = page(Array.from({ length: 20 }, (_, i) => device(i)));
    expect(serialize(data)).toBe(zodJson(list, data));
    expect(serialize(page([]))).toBe(zodJson(list, page([])));
  });

  it('writes only what the schema names: fields the service did not mean to send stay in', () => {
    const { serialize } = compileSerializer(route(list));
    const leaky = device(1, { access_token: 'secret-token', token_hash: 'abc' });
    // An alarm's extra fields and a type's too: nested objects are whitelisted as well.
    leaky.type_info = { ...leaky.type_info, secret: 'x' } as typeof leaky.type_info;
    const out = serialize({ ...page([leaky]), debug: 'internal' });
    expect(out).not.toMatch(/secret|token_hash|access_token|debug|internal/);
    expect(JSON.parse(out)).toEqual(JSON.parse(zodJson(list, page([leaky]))));
  });

  it('drops a stray key of a union branch or a nullable object, as zod does, instead of failing', () => {
    const { serialize } = compileSerializer(route(list));
    const odd = [
      device(1, { alarm: { level: 2, since: 5, rule: null, extra: 'x' } }),
      device(2, { alarm: { foo: 1 } }),
      device(3, { alarm: { level: 1, since: 5, rule: 'r', stale: undefined } }),
    ];
    expect(serialize(page(odd))).toBe(zodJson(list, page(odd)));
    const detail = z.object({ gateway: z.object({ id: z.string(), address: z.string() }).nullable() });
    const d = compileSerializer(route(detail));
    for (const gateway of [null, { id: 'g', address: '1', secret: 's' }])
      expect(d.serialize({ gateway })).toBe(zodJson(detail, { gateway }));
  });

  it('writes a field that takes any value as zod does, in its place', () => {
    const attr = z.object({ identifier: z.string(), value: z.unknown(), ts: z.number() });
    const { serialize } = compileSerializer(route(attr));
    for (const data of [
      { identifier: 'a', value: null, ts: 1 },
      { identifier: 'a', value: { nested: [1, 'two', null] }, ts: 1 },
      { identifier: 'a', value: 'text "quoted"', ts: 1 },
    ])
      expect(serialize(data)).toBe(zodJson(attr, data));
  });

  it('keeps zod for a schema JSON Schema cannot express, with the same answers', () => {
    const odd = z.object({ n: z.number(), s: z.string().transform((v) => v.length) });
    const { serialize, compiled } = compileSerializer(route(odd));
    expect(compiled).toBe(false);
    expect(() => serialize({ n: 1, s: 2 })).toThrow();
    // A plain JSON Schema fast-json-stringify refuses (an unresolvable reference): JSON.stringify, not a failure.
    const refused = compileSerializer(route({ $ref: '#/definitions/nowhere' }));
    expect(refused.compiled).toBe(false);
    expect(refused.serialize({ a: 1 })).toBe('{"a":1}');
    const plain = compileSerializer(route(z.object({ n: z.number() })));
    expect(plain.compiled).toBe(true);
    expect(plain.serialize({ n: 1, x: 2 })).toBe('{"n":1}');
  });

  it('with the check on, an answer zod would refuse or write otherwise fails', () => {
    const wrong = page([{ ...device(1), create_time: '12' }]);
    const lenient = serializerCompiler()(route(list));
    // fast-json-stringify coerces "12" to 12: without the check the shape is the services' types' promise.
    expect(JSON.parse(lenient(wrong)).info.items[0].create_time).toBe(12);
    const strict = serializerCompiler({ check: true })(route(list));
    expect(() => strict(wrong)).toThrow();
    const missing = page([{ ...device(1), name: undefined }]);
    expect(() => strict(missing)).toThrow();
    const good = page([device(1)]);
    expect(strict(good)).toBe(zodJson(list, good));
  });

  it('compiles once, on the first answer', () => {
    let reads = 0;
    const counted = z.object({ n: z.number() });
    const spy = new Proxy(counted, {
      get(target, key, receiver) {
        if (key === '_zod') reads += 1;
        return Reflect.get(target, key, receiver) as unknown;
      },
    });
    const serialize = serializerCompiler()(route(spy));
    expect(reads).toBe(0);
    serialize({ n: 1 });
    const afterFirst = reads;
    expect(afterFirst).toBeGreaterThan(0);
    serialize({ n: 2 });
    expect(reads).toBe(afterFirst);
  });
});

describe('every route of the project API', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestApp();
  });
  afterAll(async () => ctx.close());

  it('has a response schema the compiled serializer takes', () => {
    const routes = ctx.app.apiRoutes.filter((r) => !r.url.startsWith('/console'));
    expect(routes.length).toBeGreaterThan(100);
    const kept = routes
      .flatMap((r) => Object.entries(r.response ?? {}).map(([status, schema]) => ({ r, status, schema })))
      .filter(({ r, schema }) => !compileSerializer({ schema, method: r.method, url: r.url }).compiled)
      .map(({ r, status }) => `${r.method} ${r.url} ${status}`);
    expect(kept).toEqual([]);
    expect(routes.filter((r) => !r.response).map((r) => `${r.method} ${r.url}`)).toEqual([]);
  });
});
