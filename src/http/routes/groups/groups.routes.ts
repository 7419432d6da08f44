import type { FastifyInstance } from 'fastify';
import { scopeOf } from '../../../domain/auth/principal.ts';
import type { Services } from '../../../composition/services.ts';
import { IdParams } from '../common.schema.ts';
import { Empty, endpoint } from '../route.ts';
import { CreatedGroup, CreateGroupBody, GroupDetail, GroupTree, UpdateGroupBody } from './groups.schema.ts';

export function groupRoutes(app: FastifyInstance, { services }: { services: Services }) {
  const { groups } = services;
  const tags = ['Device groups'];

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/device_groups_tree',
    access: 'project',
    tags,
    summary: "The project's device groups as a tree (siblings in creation order)",
    response: GroupTree,
    handler: ({ principal }) => groups.tree(scopeOf(principal)),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/device_group',
    access: 'manage',
    tags,
    summary: 'Create a device group, at the root or under a parent group',
    description:
      'Groups nest at most 16 levels deep. Membership is set per device with `PUT /api/v1/device/:id/groups`.',
    body: CreateGroupBody,
    response: CreatedGroup,
    handler: ({ principal, body }) => groups.create(scopeOf(principal), body),
  });

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/device_group/:id',
    access: 'project',
    tags,
    summary: 'Read a device group with its parent and the number of devices directly in it',
    params: IdParams,
    response: GroupDetail,
    handler: ({ principal, params }) => groups.get(scopeOf(principal), params.id),
  });

  endpoint(app, {
    method: 'PUT',
    url: '/api/v1/device_group/:id',
    access: 'manage',
    tags,
    summary: 'Rename, describe, re-tag or move a device group',
    description:
      '`tags` replaces the whole map; `parent_id: null` makes the group a root. A group cannot move under itself or a descendant.',
    params: IdParams,
    body: UpdateGroupBody,
    response: Empty,
    handler: ({ principal, params, body }) => groups.update(scopeOf(principal), params.id, body),
  });

  endpoint(app, {
    method: 'DELETE',
    url: '/api/v1/device_group/:id',
    access: 'manage',
    tags,
    summary: 'Delete a device group that has no devices and no child groups',
    params: IdParams,
    response: Empty,
    handler: ({ principal, params }) => groups.delete(scopeOf(principal), params.id),
  });
}
