import type { FastifyInstance } from 'fastify';
import type { Services } from '../../../composition/services.ts';
import { endpoint } from '../route.ts';
import { scopeOf } from '../../../domain/auth/principal.ts';
import { ProjectInfo, ProjectSettings, ProjectSettingsBody, ProjectUpdateBody } from './project.schema.ts';

export function projectRoutes(app: FastifyInstance, { services }: { services: Services }) {
  const tags = ['Project'];
  endpoint(app, {
    method: 'GET',
    url: '/api/v1/project',
    access: 'project',
    tags,
    summary: 'Read the project of the token',
    response: ProjectInfo,
    handler: ({ principal }) => services.projects.get(principal.projectId),
  });
  endpoint(app, {
    method: 'PUT',
    url: '/api/v1/project',
    access: 'manage',
    tags,
    summary: "Update the project's name, description or tags",
    body: ProjectUpdateBody,
    response: ProjectInfo,
    handler: ({ principal, body }) => services.projects.update(principal.projectId, body),
  });
  endpoint(app, {
    method: 'GET',
    url: '/api/v1/project/settings',
    access: 'manage',
    tags,
    summary: "The project's operating limits",
    response: ProjectSettings,
    description: '`null` means the server default; `effective` is what applies now.',
    handler: ({ principal }) => services.projectSettings.get(scopeOf(principal)),
  });
  endpoint(app, {
    method: 'PUT',
    url: '/api/v1/project/settings',
    access: 'manage',
    tags,
    summary: "Change the project's operating limits",
    description:
      '`device_rate_limit`: messages per second one device may send over MQTT (bursts of twice that; over it a message is answered ' +
      '`result: 0, errcode: 429`); applies to connections made after the change. `history_retention_days`: days of attribute history and ' +
      'custom-data messages kept (0 = forever); older reports are refused. `customer_password_min_length`: shortest customer password ' +
      'accepted when a customer is created or its password set (6–128, default 8; existing passwords are not checked again). ' +
      '`null` returns to the server default.',
    body: ProjectSettingsBody,
    response: ProjectSettings,
    handler: ({ principal, body }) => services.projectSettings.update(scopeOf(principal), body),
  });
}
