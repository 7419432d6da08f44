import fastJsonStringify from 'fast-json-stringify';
import { createSerializerCompiler } from 'fastify-type-provider-zod';
import { z } from 'zod';

/**
 * How a route's answer becomes JSON, with only the fields its schema names (docs/http-api.md §1, conventions).
 *
 * A route's response schema is a zod schema: the contract and the whitelist of what leaves the server.
 * Validating every answer with zod and then calling JSON.stringify cost a device list page of 20 devices
 * ~88 µs; the same schema converted once to JSON Schema and compiled by fast-json-stringify (what Fastify
 * itself does for JSON-Schema routes) ~17 µs, with the same output and the same whitelist: it writes only
 * the properties the schema names. What it does not do is reject an answer of the wrong shape: the
 * services' types guarantee the shape at compile time, and with `RESPONSE_CHECK` on (the tests run with it)
 * every answer is also encoded by zod and must be byte for byte the same, or the request fails.
 *
 * A schema that JSON Schema cannot express (a transform, a custom type) keeps the zod serializer; a refinement
 * (`.refine`) is not checked on answers (the services' types are the guarantee).
 *
 * One adjustment keeps zod's leniency where fast-json-stringify would otherwise fail an answer zod wrote:
 * objects do not forbid other keys (`additionalProperties: false` made a union branch, picked by validating the
 * object, fail on a stray key and the answer 500; the compiled code writes only the named properties anyway).
 * `required` stays as zod declares it: fast-json-stringify writes required properties first, so making one
 * optional would reorder the answer's keys. A required property that is undefined (a `z.unknown()` field
 * included) fails the answer, where zod left it out.
 */
type Serialize = (data: unknown) => string;
interface RouteSchema {
  schema: unknown;
  method: string;
  url: string;
}

const zodSerializer = createSerializerCompiler({});

/** The JSON Schema of a zod response schema, or undefined when JSON Schema cannot express it. */
function jsonSchemaOf(schema: z.ZodType): object | undefined {
  let json: object;
  try {
    json = z.toJSONSchema(schema, { target: 'draft-7', io: 'output', unrepresentable: 'throw' });
  } catch {
    return undefined;
  }
  return lenient(json) as object;
}

/** The adjustment above, through the whole schema (its definitions included). */
function lenient(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(lenient);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'additionalProperties' && value === false) continue;
    out[key] = lenient(value);
  }
  return out;
}

/** The compiled serializer of one route's schema: fast-json-stringify when it can, zod otherwise. */
export function compileSerializer(route: RouteSchema): { serialize: Serialize; compiled: boolean } {
  if (!(route.schema instanceof z.ZodType)) {
    // A plain JSON Schema: what Fastify would do with it; one fast-json-stringify refuses, JSON.stringify.
    try {
      return { serialize: fastJsonStringify(route.schema as object) as Serialize, compiled: true };
    } catch {
      return { serialize: (data) => JSON.stringify(data), compiled: false };
    }
  }
  const json = jsonSchemaOf(route.schema);
  try {
    if (json) return { serialize: fastJsonStringify(json) as Serialize, compiled: true };
  } catch {
    // A schema fast-json-stringify does not take: zod's serializer, as for one JSON Schema cannot express.
  }
  return { serialize: zodSerializer(route as never) as Serialize, compiled: false };
}

/** The same, checked against zod's answer (RESPONSE_CHECK): a difference fails the request. */
function checked(route: RouteSchema, fast: Serialize): Serialize {
  const reference = zodSerializer(route as never) as Serialize;
  return (data) => {
    const out = fast(data);
    const expected = reference(data);
    if (out !== expected) {
      // Where, not what: an answer may hold secrets (a login's token, a new project's keys) and errors are logged.
      let at = 0;
      while (at < out.length && out[at] === expected[at]) at++;
      throw new Error(
        `response of ${route.method} ${route.url}: the compiled serializer and zod differ from character ${at} (lengths ${out.length} and ${expected.length})`,
      );
    }
    return out;
  };
}

/**
 * Fastify's serializer compiler: compiled on a route's first answer (building ~150 serializers would slow
 * every start, the tests' included), then reused.
 */
export function serializerCompiler(opts: { check?: boolean } = {}) {
  return (route: RouteSchema): Serialize => {
    let serialize: Serialize | undefined;
    return (data) => {
      if (!serialize) {
        const { serialize: fast, compiled } = compileSerializer(route);
        serialize = opts.check && compiled && route.schema instanceof z.ZodType ? checked(route, fast) : fast;
      }
      return serialize(data);
    };
  };
}
