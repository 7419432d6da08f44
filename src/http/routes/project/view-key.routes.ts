import type { FastifyInstance } from 'fastify';
import { scopeOf } from '../../../domain/auth/principal.ts';
import type { Services } from '../../../composition/services.ts';
import { endpoint } from '../route.ts';
import { IssuedViewKey, IssueViewKeyBody, ViewKeyInfo } from './view-key.schema.ts';

/** The project's data-view key for application subscriptions (device-protocol.md §9). */
export function viewKeyRoutes(app: FastifyInstance, { services }: { services: Services }) {
  const { viewKey } = services;
  const tags = ['Project'];

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/view_key',
    access: 'manage',
    tags,
    summary: "Read the project's data-view key (never its secret)",
    response: ViewKeyInfo,
    handler: ({ principal }) => viewKey.get(scopeOf(principal)),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/view_key',
    access: 'manage',
    tags,
    summary: 'Create the data-view key if there is none and issue a new view secret (shown only in this answer)',
    description:
      'The MQTT username/password of application subscriptions. Each call replaces the secret; the key is kept, ' +
      'because subscribed topics contain it, unless `rotate_key: true` asks for a new one too.',
    body: IssueViewKeyBody,
    response: IssuedViewKey,
    handler: ({ principal, body }) => viewKey.issue(scopeOf(principal), body ?? {}),
  });
}
