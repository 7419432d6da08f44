import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { Unauthorized } from '../errors.ts';
import type { Metrics } from '../metrics/metrics.ts';

/** The route label of a request no route matched: its URL may hold a device token, so it is never the label. */
const UNMATCHED = 'unmatched';

const digest = (text: string) => createHash('sha256').update(text).digest();

/**
 * `GET /metrics` (docs/metrics.md §2): Prometheus text for `Authorization: Bearer <METRICS_TOKEN>`, 401 in the
 * API's envelope otherwise; and the time of every HTTP request, labelled by its route template (never its URL,
 * which may carry a device's access token).
 */
export function registerMetrics(app: FastifyInstance, metrics: Metrics, token: string): void {
  // Digests of equal length: the comparison takes the same time whatever was sent, even its length.
  const want = digest(token);
  const tokenMatches = (header: string | undefined) => {
    const given = /^Bearer\s+(\S+)$/i.exec(header ?? '')?.[1];
    return given !== undefined && timingSafeEqual(digest(given), want);
  };

  app.addHook('onResponse', (req, reply, done) => {
    metrics.httpRequest(req.method, req.routeOptions.url ?? UNMATCHED, reply.statusCode, reply.elapsedTime / 1000);
    done();
  });

  app.get('/metrics', { schema: { hide: true } }, async (req, reply) => {
    if (!tokenMatches(req.headers.authorization)) throw new Unauthorized('Invalid metrics token');
    const text = await metrics.render();
    return reply.type(metrics.contentType).send(text);
  });
}
