import type { FastifyInstance } from 'fastify';
import type { Services } from '../../../composition/services.ts';
import { signToken } from '../../plugins/auth.ts';
import { endpoint } from '../route.ts';
import { AccessTokenBody, AccountLoginBody, TokenInfo } from './auth.schema.ts';

export function authRoutes(app: FastifyInstance, { services }: { services: Services }) {
  const tags = ['Authentication'];
  // Logins are rate limited per client address (plugins/rate-limit.ts) against brute force.
  const config = { rateLimit: app.loginRateLimit };

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/access_token',
    access: 'public',
    tags,
    config,
    summary: 'Get a project API token from an API app (valid 1 day)',
    body: AccessTokenBody,
    response: TokenInfo,
    handler: async ({ body }) => signToken(app, await services.auth.appLogin(body)),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/admin_login',
    access: 'public',
    tags,
    config,
    summary: 'Get a project API token as the project administrator (valid 7 days)',
    body: AccountLoginBody,
    response: TokenInfo,
    handler: async ({ body }) => signToken(app, await services.auth.adminLogin(body)),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/customer_login',
    access: 'public',
    tags,
    config,
    summary: 'Get a token for a customer: it sees only the devices bound to that customer (valid 7 days)',
    body: AccountLoginBody,
    response: TokenInfo,
    handler: async ({ body }) => signToken(app, await services.auth.customerLogin(body)),
  });
}
