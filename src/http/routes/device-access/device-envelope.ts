import type { FastifyInstance, FastifyRequest, RouteShorthandOptions } from 'fastify';
import { z, type ZodObject, type ZodRawShape, type ZodType } from 'zod';

type Out<T> = T extends ZodType ? z.output<T> : undefined;

export interface DeviceEndpointRequest<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  req: FastifyRequest;
}

export interface DeviceEndpointDef<
  P extends ZodType | undefined,
  Q extends ZodType | undefined,
  B extends ZodType | undefined,
  R extends ZodObject<ZodRawShape>,
> {
  method: 'GET' | 'POST' | 'PUT';
  url: string;
  summary: string;
  description?: string;
  tags: string[];
  params?: P;
  query?: Q;
  body?: B;
  /** The fields of a success beside `"result": 1`: also the whitelist of what leaves the server. */
  response: R;
  config?: RouteShorthandOptions['config'];
  /** Runs before the body is read: admission checks that must cost nothing when they refuse. */
  onRequest?: (req: FastifyRequest) => Promise<void>;
  handler: (r: DeviceEndpointRequest<Out<P>, Out<Q>, Out<B>>) => Promise<z.input<R>>;
}

const FAILURE_NOTE =
  'Device protocol answers (device-protocol.md §3–5): success `{"result":1,…}`, failure `{"result":0,"errcode":<n>,"message":"…"}` ' +
  'with HTTP 200 (401 for an unknown token or project key). The project key travels in the `Project-Key` header.';

/**
 * Registers a route of the device protocol over HTTP: the device's own credentials (no bearer
 * token), `{"result":1, …}` on success, and failures shaped by the envelope plugin because the
 * route is marked `envelope: 'device'`.
 */
export function deviceEndpoint<
  P extends ZodType | undefined,
  Q extends ZodType | undefined,
  B extends ZodType | undefined,
  R extends ZodObject<ZodRawShape>,
>(app: FastifyInstance, def: DeviceEndpointDef<P, Q, B, R>) {
  app.route({
    method: def.method,
    url: def.url,
    config: { ...def.config, access: 'public', envelope: 'device' },
    ...(def.onRequest ? { onRequest: def.onRequest } : {}),
    schema: {
      summary: def.summary,
      description: def.description ? `${def.description}\n\n${FAILURE_NOTE}` : FAILURE_NOTE,
      tags: def.tags,
      ...(def.params ? { params: def.params } : {}),
      ...(def.query ? { querystring: def.query } : {}),
      ...(def.body ? { body: def.body } : {}),
      response: { 200: z.object({ result: z.literal(1) }).extend(def.response.shape) },
    },
    handler: async (req) => {
      const fields = await def.handler({
        params: req.params as Out<P>,
        query: req.query as Out<Q>,
        body: req.body as Out<B>,
        req,
      });
      return { result: 1 as const, ...fields };
    },
  });
}
