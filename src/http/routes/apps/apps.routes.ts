import type { FastifyInstance } from 'fastify';
import { scopeOf } from '../../../domain/auth/principal.ts';
import type { Services } from '../../../composition/services.ts';
import { IdParams } from '../common.schema.ts';
import { Empty, endpoint } from '../route.ts';
import { AppList, CreateAppBody, CreatedApp, ResetSecret } from './apps.schema.ts';

export function appRoutes(app: FastifyInstance, { services }: { services: Services }) {
  const { apps } = services;
  const tags = ['API apps'];

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/apps',
    access: 'manage',
    tags,
    summary: "List the project's API apps (without their secrets)",
    response: AppList,
    handler: ({ principal }) => apps.list(scopeOf(principal)),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/app',
    access: 'manage',
    tags,
    summary: 'Create an API app; its secret_key is shown only in this answer',
    body: CreateAppBody,
    response: CreatedApp,
    handler: ({ principal, body }) => apps.create(scopeOf(principal), body),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/app/:id/secret_reset',
    access: 'manage',
    tags,
    summary: 'Issue a new secret_key for an app; the old one no longer gets tokens',
    description: 'The access key stays the same. Tokens issued before the reset stop working at once.',
    params: IdParams,
    response: ResetSecret,
    handler: ({ principal, params }) => apps.resetSecret(scopeOf(principal), params.id),
  });

  endpoint(app, {
    method: 'DELETE',
    url: '/api/v1/app/:id',
    access: 'manage',
    tags,
    summary: 'Delete an API app; its tokens stop working at once',
    description: "The project's last app cannot be deleted (422): admin_login needs an app_id.",
    params: IdParams,
    response: Empty,
    handler: ({ principal, params }) => apps.delete(scopeOf(principal), params.id),
  });
}
