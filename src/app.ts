import Fastify, {
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
} from 'fastify';
import { validatorCompiler } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import type { Config } from './config.ts';
import { registerAuth } from './http/plugins/auth.ts';
import { registerCors } from './http/plugins/cors.ts';
import { serializerCompiler } from './http/serializer.ts';
import { failure, registerEnvelope } from './http/plugins/envelope.ts';
import { registerOpenApi } from './http/plugins/openapi.ts';
import { registerRateLimit } from './http/plugins/rate-limit.ts';
import { adminRoutes } from './http/routes/admins/admins.routes.ts';
import { alarmRoutes } from './http/routes/alarms/alarms.routes.ts';
import { controlRoutes } from './http/routes/control/control.routes.ts';
import { appDeviceRoutes } from './http/routes/device-access/app-device.routes.ts';
import { deviceAccessRoutes } from './http/routes/device-access/device-access.routes.ts';
import { appRoutes } from './http/routes/apps/apps.routes.ts';
import { commandRoutes } from './http/routes/commands/commands.routes.ts';
import { authRoutes } from './http/routes/auth/auth.routes.ts';
import { customerRoutes } from './http/routes/customers/customers.routes.ts';
import { dataStreamRoutes } from './http/routes/data-streams/data-streams.routes.ts';
import { eventRoutes } from './http/routes/events/events.routes.ts';
import { deviceDataRoutes } from './http/routes/device-data/device-data.routes.ts';
import { deviceTypeRoutes } from './http/routes/device-types/device-types.routes.ts';
import { deviceRoutes } from './http/routes/devices/devices.routes.ts';
import { extendInfoRoutes } from './http/routes/devices/extend-infos.routes.ts';
import { gatewayRoutes } from './http/routes/gateways/gateways.routes.ts';
import { groupRoutes } from './http/routes/groups/groups.routes.ts';
import { platformRoutes } from './http/routes/platform/platform.routes.ts';
import { projectRoutes } from './http/routes/project/project.routes.ts';
import { viewKeyRoutes } from './http/routes/project/view-key.routes.ts';
import { registerConsole } from './http/console.ts';
import { registerMetrics } from './http/metrics.ts';
import type { Metrics } from './metrics/metrics.ts';
import { createReadiness, healthSchema, type Readiness } from './http/readiness.ts';
import type { Access } from './http/routes/route.ts';
import type { Services } from './composition/services.ts';

export type AppConfig = Pick<
  Config,
  'BODY_LIMIT' | 'LOGIN_RATE_LIMIT' | 'LOGIN_RATE_WINDOW_MS' | 'PLATFORM_TOKEN' | 'TRUST_PROXY'
> &
  Partial<
    Pick<
      Config,
      | 'DATA_DIR'
      | 'PROVISION_RATE'
      | 'PROVISION_BURST'
      | 'PROVISION_CREATE_RATE'
      | 'PROVISION_CREATE_BURST'
      | 'METRICS_TOKEN'
      | 'RESPONSE_CHECK'
    >
  > &
  Partial<
    Pick<
      Config,
      | 'EVENTS_STREAMS_PER_PROJECT'
      | 'EVENTS_STREAMS_PER_ADDRESS'
      | 'EVENTS_STREAMS_PER_PRINCIPAL'
      | 'EVENTS_QUEUE_BYTES'
      | 'EVENTS_KEEPALIVE_MS'
    >
  >;

export interface ApiRoute {
  method: string;
  url: string;
  access: Access;
  /** The schemas of its answers by status (src/http/serializer.ts compiles them). */
  response?: Record<string, unknown>;
}

declare module 'fastify' {
  interface FastifyInstance {
    apiRoutes: ApiRoute[];
  }
}

export interface AppDeps {
  config: AppConfig;
  services: Services;
  jwtSecret: string;
  logger: Logger | false;
  /** What `/readyz` checks; by default only the report pipeline (no database probe, no listeners). */
  readiness?: Readiness;
  /** The server's metrics (src/metrics/), served at `/metrics` when METRICS_TOKEN is set (docs/metrics.md). */
  metrics?: Metrics;
}

/** The HTTP application as a value: no listen() here (architecture.md §1); main.ts and tests own that. */
export async function buildApp({
  config,
  services,
  jwtSecret,
  logger,
  readiness,
  metrics,
}: AppDeps): Promise<FastifyInstance> {
  const opts: FastifyServerOptions = {
    bodyLimit: config.BODY_LIMIT,
    // One hop: the client address is the entry the proxy added (the last of X-Forwarded-For), not the
    // first, which the client writes itself and could change at every login attempt.
    trustProxy: config.TRUST_PROXY ? (_address: string, hop: number) => hop === 0 : false,
    requestIdHeader: 'x-request-id',
    // Malformed URLs and the like fail in the router, before the error handler: answer them in the envelope too.
    frameworkErrors: (err, _req, reply) => {
      const r = reply as unknown as FastifyReply;
      void r
        .code(200)
        .type('application/json; charset=utf-8')
        .send(JSON.stringify(failure(400, err.message || 'Invalid request')));
    },
    ...(logger ? { loggerInstance: logger } : { logger: false }),
  };
  const app = Fastify(opts);
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler({ check: config.RESPONSE_CHECK ?? false }));
  // First, so every route and the not-found answer are timed (docs/metrics.md).
  if (config.METRICS_TOKEN) {
    if (!metrics) throw new Error('METRICS_TOKEN is set but the app was given no metrics');
    registerMetrics(app, metrics, config.METRICS_TOKEN);
  }

  // The route table of the project API, for the OpenAPI and isolation tests and for operators.
  const apiRoutes: ApiRoute[] = [];
  app.decorate('apiRoutes', apiRoutes);
  app.addHook('onRoute', (r) => {
    const access = r.config?.access;
    const response = r.schema?.response as Record<string, unknown> | undefined;
    if (access)
      for (const method of [r.method].flat())
        if (method !== 'HEAD') apiRoutes.push({ method, url: r.url, access, ...(response ? { response } : {}) });
  });

  registerEnvelope(app, config.BODY_LIMIT);
  await registerCors(app);
  await registerOpenApi(app);
  await registerRateLimit(app, {
    loginMax: config.LOGIN_RATE_LIMIT,
    loginWindowMs: config.LOGIN_RATE_WINDOW_MS,
    provisionRate: config.PROVISION_RATE,
    provisionBurst: config.PROVISION_BURST,
    provisionCreateRate: config.PROVISION_CREATE_RATE,
    provisionCreateBurst: config.PROVISION_CREATE_BURST,
  });
  await registerAuth(app, { secret: jwtSecret, auth: services.auth });

  // Liveness: the process answers. Readiness (and /health): it should be sent traffic; 503 names the failing checks.
  app.get('/livez', { schema: healthSchema('/livez') }, async () => ({ result: true, info: { status: 'ok' } }));
  const ready = readiness ?? createReadiness({ ingest: () => services.ingest.stats() });
  const readyz = async (_req: FastifyRequest, reply: FastifyReply) => {
    const { ready: ok, failing, node } = await ready.check();
    const who = node ? { node: node.id, cluster: node.cluster, nats: node.nats } : {};
    if (ok) return { result: true, info: { status: 'ok', ...who } };
    const errors = failing.map((f) => ({ path: f.check, message: f.message }));
    return reply
      .code(503)
      .type('application/json; charset=utf-8')
      .send(JSON.stringify(failure(503, `Not ready: ${failing.map((f) => f.check).join(', ')}`, errors)));
  };
  app.get('/readyz', { schema: healthSchema('/readyz') }, readyz);
  app.get('/health', { schema: healthSchema('/health') }, readyz);

  const deps = { services };
  authRoutes(app, deps);
  projectRoutes(app, deps);
  viewKeyRoutes(app, deps);
  deviceTypeRoutes(app, deps);
  groupRoutes(app, deps);
  deviceRoutes(app, deps);
  extendInfoRoutes(app, deps);
  customerRoutes(app, deps);
  appRoutes(app, deps);
  adminRoutes(app, deps);
  deviceAccessRoutes(app, deps);
  appDeviceRoutes(app, deps);
  controlRoutes(app, deps);
  commandRoutes(app, deps);
  deviceDataRoutes(app, deps);
  dataStreamRoutes(app, deps);
  gatewayRoutes(app, deps);
  alarmRoutes(app, deps);
  eventRoutes(app, {
    services,
    limits: {
      ...(config.EVENTS_STREAMS_PER_PROJECT !== undefined ? { perProject: config.EVENTS_STREAMS_PER_PROJECT } : {}),
      ...(config.EVENTS_STREAMS_PER_ADDRESS !== undefined ? { perAddress: config.EVENTS_STREAMS_PER_ADDRESS } : {}),
      ...(config.EVENTS_STREAMS_PER_PRINCIPAL !== undefined
        ? { perPrincipal: config.EVENTS_STREAMS_PER_PRINCIPAL }
        : {}),
      ...(config.EVENTS_QUEUE_BYTES !== undefined ? { queueBytes: config.EVENTS_QUEUE_BYTES } : {}),
      ...(config.EVENTS_KEEPALIVE_MS !== undefined ? { keepaliveMs: config.EVENTS_KEEPALIVE_MS } : {}),
    },
  });

  // The web console at /console/ (README "Web console"); built on first use when missing or stale.
  await registerConsole(app, undefined, config.DATA_DIR !== undefined ? { dataDir: config.DATA_DIR } : {});

  const platformToken = config.PLATFORM_TOKEN;
  if (platformToken) {
    await app.register(async (scope) => platformRoutes(scope, { services, token: platformToken }));
  }
  return app;
}
