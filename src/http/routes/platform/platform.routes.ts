import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { Unauthorized } from '../../../errors.ts';
import type { Services } from '../../../composition/services.ts';
import { IdParams } from '../common.schema.ts';
import { corsOff } from '../../plugins/cors.ts';
import { Empty, endpoint } from '../route.ts';
import { CreatedProject, CreateProjectBody, ProjectSummary } from './platform.schema.ts';

function tokenMatches(header: string | undefined, token: string): boolean {
  const given = Buffer.from(/^Bearer\s+(\S+)$/i.exec(header ?? '')?.[1] ?? '');
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

/**
 * The operator's tenant management. Over HTTP it needs `Authorization: Bearer $PLATFORM_TOKEN` and
 * exists only when the token is configured; on the local control socket (cli/control-socket.ts)
 * it is registered with `token: null`, the socket's file permissions being the guard.
 */
export function platformRoutes(
  app: FastifyInstance,
  { services, token }: { services: Services; token: string | null },
) {
  const tags = ['Platform (operator)'];
  if (token !== null) {
    // No web page may call it (src/http/plugins/cors.ts).
    corsOff(app);
    // In the OpenAPI document: a bearer token, the operator's PLATFORM_TOKEN (http-api.md §7).
    app.addHook('onRoute', (route) => {
      route.schema = {
        ...route.schema,
        security: [{ bearer: [] }],
        description: `${route.schema?.description ? `${route.schema.description} ` : ''}Needs \`Authorization: Bearer <PLATFORM_TOKEN>\`.`,
      };
    });
    app.addHook('onRequest', async (req) => {
      if (!tokenMatches(req.headers.authorization, token)) throw new Unauthorized('Invalid platform token');
    });
  }
  endpoint(app, {
    method: 'POST',
    url: '/platform/v1/projects',
    access: 'public',
    tags,
    summary: 'Create a project with its first API app and administrator (secrets are shown only here)',
    body: CreateProjectBody,
    response: CreatedProject,
    handler: ({ body }) => services.projects.create(body),
  });
  endpoint(app, {
    method: 'GET',
    url: '/platform/v1/projects',
    access: 'public',
    tags,
    summary: 'List projects',
    response: z.object({ items: z.array(ProjectSummary) }),
    handler: async () => ({ items: await services.projects.list() }),
  });
  endpoint(app, {
    method: 'DELETE',
    url: '/platform/v1/projects/:id',
    access: 'public',
    tags,
    summary: 'Delete a project and all of its data',
    params: IdParams,
    response: Empty,
    handler: ({ params }) => services.projects.delete(params.id),
  });
}
