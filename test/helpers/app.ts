import type { FastifyInstance, InjectOptions } from 'fastify';
import { buildApp, type AppConfig } from '../../src/app.ts';
import type { Database } from '../../src/db/client.ts';
import type { CreatedProject } from '../../src/domain/projects/projects.service.ts';
import { serviceSteps, stopSteps } from '../../src/composition/lifecycle.ts';
import { createRepositories } from '../../src/composition/repositories.ts';
import { createServices, type Services } from '../../src/composition/services.ts';
import { createMetrics, type Metrics } from '../../src/metrics/metrics.ts';
import { ingestBatchDelayMsOf, type ServiceSettings } from '../../src/composition/settings.ts';
import { openTestDatabase } from './db.ts';

export const TEST_PLATFORM_TOKEN = 'test-platform-token-0123456789';
const TEST_JWT_SECRET = 'test-jwt-secret-0123456789abcdef0123456789';

export interface TestContext {
  app: FastifyInstance;
  services: Services;
  database: Database;
  /** The server's metrics, when the configuration sets METRICS_TOKEN. */
  metrics?: Metrics;
  close(): Promise<void>;
}

/** One app over one database for a test file; every test makes its own projects. */
export async function createTestApp(
  config: Partial<AppConfig> = {},
  opts: { database?: Database; settings?: Partial<ServiceSettings>; clock?: () => number } = {},
): Promise<TestContext> {
  const database = opts.database ?? (await openTestDatabase());
  // As main.ts: metrics only with METRICS_TOKEN (docs/metrics.md), a registry of this app's own.
  const metrics = config.METRICS_TOKEN ? createMetrics({ node: 'test-node' }) : undefined;
  if (metrics && database.pool) metrics.watchDatabase(database.pool);
  const services = createServices({
    db: database.db,
    repositories: createRepositories(database.db),
    serverSecret: TEST_JWT_SECRET,
    // As main.ts: the batch wait of this database unless the test sets one.
    settings: { ingestBatchDelayMs: ingestBatchDelayMsOf(database.driver), ...opts.settings },
    ...(opts.clock ? { clock: opts.clock } : {}),
    metrics,
  });
  metrics?.watchIngest(() => services.ingest.stats());
  const app = await buildApp({
    config: {
      BODY_LIMIT: 1024 * 1024,
      LOGIN_RATE_LIMIT: 1000,
      LOGIN_RATE_WINDOW_MS: 60_000,
      PLATFORM_TOKEN: TEST_PLATFORM_TOKEN,
      TRUST_PROXY: false,
      // Every answer checked against zod's encoding of its schema (src/http/serializer.ts).
      RESPONSE_CHECK: true,
      ...config,
    },
    services,
    jwtSecret: TEST_JWT_SECRET,
    logger: false,
    ...(metrics ? { metrics } : {}),
  });
  await app.ready();
  return {
    app,
    services,
    database,
    ...(metrics ? { metrics } : {}),
    // The server's own stop order (src/composition/lifecycle.ts); the services are not started here:
    // tests start what they exercise.
    close: async () => {
      await app.close();
      await stopSteps(serviceSteps(services, { logger: app.log }));
      await database.close();
    },
  };
}

export interface ApiResponse {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- tests read arbitrary JSON
  headers: Record<string, unknown>;
}

/** A client of the project API bound to one token. */
export function client(app: FastifyInstance, token?: string) {
  const call = async (
    method: InjectOptions['method'],
    url: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<ApiResponse> => {
    const res = await app.inject({
      method,
      url,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      ...(body !== undefined ? { payload: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    });
    let parsed: unknown;
    try {
      parsed = res.json();
    } catch {
      parsed = res.body;
    }
    return { status: res.statusCode, body: parsed, headers: res.headers };
  };
  return {
    get: (url: string) => call('GET', url),
    post: (url: string, body: unknown = {}) => call('POST', url, body),
    put: (url: string, body: unknown = {}) => call('PUT', url, body),
    delete: (url: string) => call('DELETE', url),
    call,
  };
}
export type Client = ReturnType<typeof client>;

export interface ProjectFixture {
  project: CreatedProject;
  /** Client with an API-app token (the integrator's usual credential). */
  api: Client;
  /** Client with an administrator token from admin_login. */
  admin: Client;
  appToken: string;
  adminToken: string;
}

/** Creates a fresh project and logs in as its app and its administrator. */
export async function createProject(ctx: TestContext, name = 'test project'): Promise<ProjectFixture> {
  const project = await ctx.services.projects.create({ name });
  const anon = client(ctx.app);
  const appLogin = await anon.post('/api/v1/access_token', project.app);
  const adminLogin = await anon.post('/api/v1/admin_login', { app_id: project.app.app_id, ...project.admin });
  if (!appLogin.body.result || !adminLogin.body.result)
    throw new Error(`login failed: ${JSON.stringify([appLogin.body, adminLogin.body])}`);
  const appToken = appLogin.body.info.access_token as string;
  const adminToken = adminLogin.body.info.access_token as string;
  return { project, appToken, adminToken, api: client(ctx.app, appToken), admin: client(ctx.app, adminToken) };
}

/** Asserts a business failure with the given errcode and returns the body. */
export function expectFailure(
  res: ApiResponse,
  errcode: number,
  status = errcode === 401 || errcode === 429 ? errcode : 200,
) {
  if (res.status !== status || res.body?.result !== false || res.body?.errcode !== errcode) {
    throw new Error(`expected failure ${errcode} (HTTP ${status}), got HTTP ${res.status} ${JSON.stringify(res.body)}`);
  }
  return res.body;
}

/** Asserts success and returns `info`. */
export function expectOk(res: ApiResponse) {
  if (res.status !== 200 || res.body?.result !== true) {
    throw new Error(`expected success, got HTTP ${res.status} ${JSON.stringify(res.body)}`);
  }
  return res.body.info;
}

/** Creates a device in the project (`body` as POST /api/v1/device takes it) and reads its access token. */
export async function deviceWithToken(
  p: ProjectFixture,
  body: Record<string, unknown> = { name: 'd' },
): Promise<{ id: string; token: string }> {
  const d = expectOk(await p.api.post('/api/v1/device', body));
  const cert = expectOk(await p.api.get(`/api/v1/device/${d.id}/certificate`));
  return { id: d.id as string, token: cert.access_token as string };
}
