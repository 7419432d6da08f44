import type { FastifyInstance } from 'fastify';
import { scopeOf } from '../../../domain/auth/principal.ts';
import type { Services } from '../../../composition/services.ts';
import { IdParams } from '../common.schema.ts';
import { Empty, endpoint } from '../route.ts';
import { Admin, AdminList, CreateAdminBody, CreatedAdmin, PasswordBody, UpdateAdminInfoBody } from './admins.schema.ts';

export function adminRoutes(app: FastifyInstance, { services }: { services: Services }) {
  const { admins } = services;
  const tags = ['Administrators'];

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/admin',
    access: 'admin',
    tags,
    summary: 'Read the calling administrator (only with a token from admin_login)',
    response: Admin,
    handler: ({ principal }) => admins.me(scopeOf(principal), principal.subjectId),
  });

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/administrators',
    access: 'manage',
    tags,
    summary: "List the project's administrators",
    response: AdminList,
    handler: ({ principal }) => admins.list(scopeOf(principal)),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/administrator',
    access: 'manage',
    tags,
    summary: 'Create an administrator account (the account is unique within the project)',
    body: CreateAdminBody,
    response: CreatedAdmin,
    handler: ({ principal, body }) => admins.create(scopeOf(principal), body),
  });

  endpoint(app, {
    method: 'PUT',
    url: '/api/v1/administrator/:id/info',
    access: 'manage',
    tags,
    summary: "Update an administrator's name, email or tags (tags are replaced)",
    params: IdParams,
    body: UpdateAdminInfoBody,
    response: Empty,
    handler: ({ principal, params, body }) => admins.updateInfo(scopeOf(principal), params.id, body),
  });

  endpoint(app, {
    method: 'PUT',
    url: '/api/v1/administrator/:id/pwd',
    access: 'manage',
    tags,
    summary: "Set an administrator's password",
    params: IdParams,
    body: PasswordBody,
    response: Empty,
    handler: ({ principal, params, body }) => admins.setPassword(scopeOf(principal), params.id, body.password),
  });

  endpoint(app, {
    method: 'DELETE',
    url: '/api/v1/administrator/:id',
    access: 'manage',
    tags,
    summary: 'Delete an administrator; its tokens stop working at once',
    description: "The project's last administrator cannot be deleted (422).",
    params: IdParams,
    response: Empty,
    handler: ({ principal, params }) => admins.delete(scopeOf(principal), params.id),
  });
}
