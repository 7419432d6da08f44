import cors, { type FastifyCorsOptions } from '@fastify/cors';
import type { FastifyInstance } from 'fastify';

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
 * operator's platform API answers no cross-origin request.
 */
export async function registerCors(app: FastifyInstance) {
  await app.register(cors, {
    hook: 'onRequest',
    delegator: (req, cb) => cb(null, req.url.startsWith('/platform/') ? { origin: false } : API),
  });
}
