import type { FastifyInstance } from 'fastify';
import type { Services } from '../../services.ts';
import { endpoint } from '../route.ts';
import { ProjectInfo, ProjectUpdateBody } from './project.schema.ts';

export function projectRoutes(app: FastifyInstance, { services }: { services: Services }) {
  const tags = ['Project'];
  endpoint(app, {
    method: 'GET', url: '/api/v1/project', access: 'project', tags,
    summary: 'Read the project of the token', response: ProjectInfo,
    handler: ({ principal }) => services.projects.get(principal.projectId),
  });
  endpoint(app, {
    method: 'PUT', url: '/api/v1/project', access: 'manage', tags,
    summary: "Update the project's name, description or tags", body: ProjectUpdateBody, response: ProjectInfo,
    handler: ({ principal, body }) => services.projects.update(principal.projectId, body),
  });
}
