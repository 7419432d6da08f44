import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
import { addressKey } from '../../lib/address.ts';
import { TooManyRequests } from '../../errors.ts';

/** `PROVISION_RATE` / `PROVISION_BURST` (src/config.ts): 1,000 devices behind one address get their certificates in about 25 s. */
export const PROVISION_DEFAULTS = { rate: 20, burst: 500 } as const;
/** `PROVISION_CREATE_RATE` / `PROVISION_CREATE_BURST`: devices auto-created per project (a factory of 1,000 at once). */
export const PROVISION_CREATE_DEFAULTS = { rate: 5, burst: 1_000 } as const;

declare module 'fastify' {
  interface FastifyInstance {
    /** Route-level rate-limit options for login calls. */
    loginRateLimit: { max: number; timeWindow: number };
    /** Device certificate requests per second per client address, and the burst (device-access.routes.ts). */
    provisionRateLimit: { rate: number; burst: number; createRate: number; createBurst: number };
  }
}

/**
 * Rate limiting with @fastify/rate-limit; not global: routes opt in (logins, against brute force).
 * Over-limit answers are the failure envelope with errcode 429 and a Retry-After header.
 */
export async function registerRateLimit(
  app: FastifyInstance,
  opts: {
    loginMax: number;
    loginWindowMs: number;
    provisionRate?: number;
    provisionBurst?: number;
    provisionCreateRate?: number | undefined;
    provisionCreateBurst?: number | undefined;
  },
) {
  await app.register(rateLimit, {
    global: false,
    // IPv6 clients by their /64 (one host has a whole network of addresses), as device logins.
    keyGenerator: (req) => addressKey(req.ip),
    errorResponseBuilder: (_req, ctx) => {
      const seconds = Math.max(1, Math.ceil(ctx.ttl / 1000));
      const err = new TooManyRequests(`Too many requests, retry in ${seconds} s`, seconds);
      return Object.assign(err, { statusCode: 429 });
    },
  });
  app.decorate('loginRateLimit', { max: opts.loginMax, timeWindow: opts.loginWindowMs });
  app.decorate('provisionRateLimit', {
    rate: opts.provisionRate ?? PROVISION_DEFAULTS.rate,
    burst: opts.provisionBurst ?? PROVISION_DEFAULTS.burst,
    createRate: opts.provisionCreateRate ?? PROVISION_CREATE_DEFAULTS.rate,
    createBurst: opts.provisionCreateBurst ?? PROVISION_CREATE_DEFAULTS.burst,
  });
}
