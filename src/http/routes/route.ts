import type { FastifyInstance, FastifyRequest, RouteShorthandOptions } from 'fastify';
import { z, type ZodType } from 'zod';
import type { Principal } from '../../domain/auth/principal.ts';
import { Forbidden } from '../../errors.ts';

/**
 * Who may call a route:
 * - `public`: nobody needs a token (logins, device certificate);
 * - `project`: any project token, customers included (customers are narrowed to their devices);
 * - `manage`: app or admin tokens; a customer token gets 403;
 * - `admin`: only tokens from `admin_login` (http-api.md §3 `GET /api/v1/admin`).
 */
export type Access = 'public' | 'project' | 'manage' | 'admin';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyContextConfig {
    access?: Access;
  }
}

/** The success envelope of http-api.md §1 around a route's own result. */
export const envelope = <T extends ZodType>(info: T) => z.object({ result: z.literal(true), info });

export interface EndpointRequest<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  principal: Principal;
  req: FastifyRequest;
}

type Out<T> = T extends ZodType ? z.output<T> : undefined;
/** Calls that only acknowledge (`response: Empty`) may return nothing: they answer `info: {}`. */
type Info<R extends ZodType> = R extends typeof Empty ? void | z.input<R> : z.input<R>;

export interface EndpointDef<
  P extends ZodType | undefined,
  Q extends ZodType | undefined,
  B extends ZodType | undefined,
  R extends ZodType,
> {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';
  url: string;
  access: Access;
  summary: string;
  description?: string;
  tags: string[];
  params?: P;
  query?: Q;
  body?: B;
  /** Schema of `info`: also the whitelist of what leaves the server. */
  response: R;
  config?: RouteShorthandOptions['config'];
  handler: (r: EndpointRequest<Out<P>, Out<Q>, Out<B>>) => Promise<Info<R>> | Info<R>;
}

/**
 * Registers one route of the project API: schema (validation + OpenAPI), access rule, one service
 * call, and the success envelope. Routes stay thin (architecture.md §2).
 */
export function endpoint<
  P extends ZodType | undefined,
  Q extends ZodType | undefined,
  B extends ZodType | undefined,
  R extends ZodType,
>(app: FastifyInstance, def: EndpointDef<P, Q, B, R>) {
  app.route({
    method: def.method,
    url: def.url,
    config: { ...def.config, access: def.access },
    schema: {
      summary: def.summary,
      ...(def.description ? { description: def.description } : {}),
      tags: def.tags,
      ...(def.access === 'public' ? {} : { security: [{ bearer: [] }] }),
      ...(def.params ? { params: def.params } : {}),
      ...(def.query ? { querystring: def.query } : {}),
      ...(def.body ? { body: def.body } : {}),
      response: { 200: envelope(def.response) },
    },
    handler: async (req) => {
      const principal = req.principal;
      if (def.access !== 'public' && !principal) throw new Forbidden();
      const out = await def.handler({
        params: req.params as Out<P>,
        query: req.query as Out<Q>,
        body: req.body as Out<B>,
        principal: principal as Principal,
        req,
      });
      return { result: true as const, info: out ?? {} };
    },
  });
}

/** `info: {}` of calls that only acknowledge. */
export const Empty = z.object({}).strict();
