import cors, { type FastifyCorsOptions } from '@fastify/cors';
import type { FastifyInstance } from 'fastify';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** @fastify/cors' documented per-route override of its options: false turns CORS off for the route. */
    cors?: false | FastifyCorsOptions;
  }
}

/** What a web page of any origin may send and read (http-api.md §2, "From a web page"). */
const API: FastifyCorsOptions = {
  origin: '*',
  methods: ['GET', 'POST', 'PUT', 'DELETE'],
  allowedHeaders: ['Authorization', 'Content-Type', 'Project-Key', 'X-Request-Id'],
  // Content-Disposition: a page saving the CSV export reads the file name the server gives it.
  exposedHeaders: ['Retry-After', 'X-Request-Id', 'Content-Disposition'],
  maxAge: 86_400,
};

/**
 * Cross-origin requests: the vendor documents logging in with `admin_login` from a web page and calling
 * the API from the browser with the token. Tokens travel in the Authorization header, never in cookies,
 * so any origin may call (no credentials mode): a page learns nothing its user did not give it. The
 * operator's platform API answers no cross-origin request: its routes turn CORS off (`corsOff`).
 *
 * The options are fixed, not chosen per request by a delegator: @fastify/cors normalizes a delegator's
 * options again on every request, which was ~5% of the CPU of `GET /health` (bench/README "Answers
 * compiled, rows mapped once").
 */
export async function registerCors(app: FastifyInstance) {
  await app.register(cors, { hook: 'onRequest', ...API });
  // Every other path under /platform/ (a 404, all of them when the platform API is off, a preflight to any):
  // not found, without CORS headers, so a page learns nothing of it and a browser sends nothing after a preflight.
  app.route({
    method: ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'],
    url: '/platform/*',
    config: { cors: false },
    schema: { hide: true },
    handler: (_req, reply) => reply.callNotFound(),
  });
}

/** Turns CORS off for every route of `scope` (the platform API): its answers carry no CORS headers. */
export function corsOff(scope: FastifyInstance) {
  scope.addHook('onRoute', (route) => {
    route.config = { ...route.config, cors: false };
  });
}
