import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { scopeOf } from '../../../domain/auth/principal.ts';
import type { LiveMessage } from '../../../domain/events/live-events.ts';
import { Forbidden, NotFound, Unauthorized } from '../../../errors.ts';
import type { Services } from '../../../composition/services.ts';
import {
  createEventStreams,
  EVENT_STREAM_DEFAULTS,
  type EventStreamLimits,
  type EventStreams,
} from './event-streams.ts';
import { EventsQuery } from './events.schema.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** The open live event streams (http-api.md §4.14); main.ts ends them first when the server stops. */
    eventStreams: EventStreams;
  }
}

const DESCRIPTION =
  'Server-Sent Events (`text/event-stream`): every message is `id: <n>`, `event: <kind>`, `data: <JSON>` where the ' +
  'JSON is the application-subscription payload of the kind (device-protocol.md §9). `kinds` and `device` are comma ' +
  'lists (default: all). A `: ping` comment comes every 15 s; the stream ends with `event: end` (`data: {"reason"}`: ' +
  '`expired`, `revoked`, `shutdown`) or `event: overflow` when the reader falls behind. Customer tokens see only ' +
  'their bound devices. Failures before the stream starts answer the usual envelope (429 when too many streams are open).';

/**
 * `GET /api/v1/events` (http-api.md §4.14): the live events of application subscriptions over HTTP, for
 * the web console and integrators that cannot hold MQTT. The route checks everything that can fail
 * (filters, devices, limits) before it answers, so failures are the usual envelope; then it hands the
 * response to the stream (event-streams.ts), which owns it until it ends.
 */
export function eventRoutes(
  app: FastifyInstance,
  { services, limits = {} }: { services: Services; limits?: Partial<EventStreamLimits> },
) {
  const streams = createEventStreams({
    bus: services.bus,
    auth: services.auth,
    limits: { ...EVENT_STREAM_DEFAULTS, ...limits },
    log: app.log,
  });
  app.decorate('eventStreams', streams);
  // Open streams would keep Fastify's close (and so the whole shutdown) waiting for ever.
  app.addHook('preClose', async () => streams.closeAll());
  app.addHook('onClose', async () => streams.close());

  app.route({
    method: 'GET',
    url: '/api/v1/events',
    config: { access: 'project' },
    schema: {
      summary: 'Live events of the devices the token sees (Server-Sent Events)',
      description: DESCRIPTION,
      tags: ['Events'],
      security: [{ bearer: [] }],
      querystring: EventsQuery,
      response: {
        200: {
          description: 'A text/event-stream that lasts until the token expires',
          content: { 'text/event-stream': { schema: z.string() } },
        },
      },
    },
    handler: async (req: FastifyRequest, reply: FastifyReply) => {
      const principal = req.principal;
      if (!principal) throw new Forbidden();
      const query = req.query as z.output<typeof EventsQuery>;
      const claims = tokenClaims(app, req);
      const slot = streams.reserve(principal, req.ip);
      let started = false;
      try {
        const scope = scopeOf(principal);
        if (query.device) {
          // Devices of another project, or not bound to this customer, do not exist for the caller.
          let visible = await services.liveEventsRepo.existingDeviceIds(scope.projectId, query.device);
          if (scope.customerId !== undefined) {
            const bound = new Set(await services.liveEventsRepo.boundDeviceIds(scope.projectId, scope.customerId));
            visible = visible.filter((id) => bound.has(id));
          }
          if (visible.length < query.device.length) throw new NotFound('Device');
        }
        // Messages go to the stream once it is open (nothing is sent before its head).
        const sink: { send?: (m: LiveMessage) => void } = {};
        const watch = await services.liveEvents.watch(
          {
            scope,
            ...(query.kinds ? { kinds: new Set(query.kinds) } : {}),
            ...(query.device ? { deviceIds: new Set(query.device) } : {}),
          },
          (m) => sink.send?.(m),
        );
        if (req.raw.destroyed || reply.raw.destroyed) {
          // The reader left during the look-ups.
          watch.close();
          slot.release();
          started = true;
          return reply.hijack();
        }
        // Throws (a 429 envelope, the reply untouched) when the server began to stop during the look-ups.
        const opened = streams.open({
          res: reply.raw,
          headers: reply.getHeaders(),
          principal,
          tokenIssuedAt: claims.ts,
          expiresAt: claims.exp * 1000,
          slot,
          watch,
        });
        reply.hijack();
        started = true;
        sink.send = opened.send;
        req.log.info(
          { projectId: principal.projectId, kind: principal.kind, kinds: query.kinds, devices: query.device?.length },
          'event stream opened',
        );
      } finally {
        if (!started) slot.release();
      }
    },
  });
}

/** `exp` (s) and `ts` (issued at, ms) of the bearer token the auth hook has just verified. */
function tokenClaims(app: FastifyInstance, req: FastifyRequest): { exp: number; ts: number } {
  const token = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
  const claims = token ? app.jwt.decode<{ exp?: unknown; ts?: unknown }>(token) : null;
  if (typeof claims?.exp !== 'number' || typeof claims.ts !== 'number') throw new Unauthorized('Invalid access token');
  return { exp: claims.exp, ts: claims.ts };
}
