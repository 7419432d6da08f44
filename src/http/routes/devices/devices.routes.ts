import type { FastifyInstance } from 'fastify';
import { BadRequest } from '../../../errors.ts';
import { scopeOf } from '../../../domain/auth/principal.ts';
import type { Services } from '../../../composition/services.ts';
import { IdParams } from '../common.schema.ts';
import { Empty, endpoint } from '../route.ts';
import {
  Certificate,
  CreatedDevice,
  CreateDeviceBody,
  DeviceDetail,
  DeviceList,
  DeviceListQuery,
  DevicesAlarmStat,
  DevicesStat,
  GroupsBody,
  KeysBody,
  TagsBody,
  UpdateInfoBody,
} from './devices.schema.ts';

export function deviceRoutes(app: FastifyInstance, { services }: { services: Services }) {
  const { devices } = services;
  const tags = ['Devices'];

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/devices_stat',
    access: 'project',
    tags: ['Project'],
    summary: 'Counts of devices by online, active and alarm state',
    response: DevicesStat,
    handler: ({ principal }) => devices.stat(scopeOf(principal)),
  });
  endpoint(app, {
    method: 'GET',
    url: '/api/v1/devices_alarm_stat',
    access: 'project',
    tags: ['Project'],
    summary: 'Counts of devices by their highest active alarm level',
    response: DevicesAlarmStat,
    handler: ({ principal }) => devices.alarmStat(scopeOf(principal)),
  });

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/devices',
    access: 'project',
    tags,
    summary: 'List devices, newest first',
    description:
      '`type`, `group`/`groups` (comma-separated), `include_sub_groups=1` and `search` (name contains, any case, or device_key starts with; 1–64 characters) filter the list; `page_records` is 1–500. `after=<device id>` pages by key: the devices older than that one (the last of the previous page); `page` must then be 1.',
    query: DeviceListQuery,
    response: DeviceList,
    handler: ({ principal, query }) => {
      if (query.after !== undefined && query.page !== 1)
        throw new BadRequest('Use either page or after, not both', [
          { path: 'page', message: 'must be 1 (or absent) with after' },
        ]);
      const groupIds = [...(query.group ? [query.group] : []), ...(query.groups ?? [])];
      return devices.list(
        scopeOf(principal),
        {
          ...(query.type !== undefined ? { typeId: query.type } : {}),
          ...(groupIds.length ? { groupIds, includeSubGroups: query.include_sub_groups } : {}),
          ...(query.online !== undefined ? { online: query.online } : {}),
          ...(query.device_key !== undefined ? { deviceKey: query.device_key } : {}),
          ...(query.search !== undefined ? { search: query.search } : {}),
        },
        query.page,
        query.page_records,
        query.after,
      );
    },
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/device',
    access: 'manage',
    tags,
    summary: 'Create a device',
    body: CreateDeviceBody,
    response: CreatedDevice,
    handler: ({ principal, body }) => devices.create(scopeOf(principal), body),
  });

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/device/:id',
    access: 'project',
    tags,
    summary: 'Read a device',
    params: IdParams,
    response: DeviceDetail,
    handler: ({ principal, params }) => devices.get(scopeOf(principal), params.id),
  });

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/device/:id/certificate',
    access: 'manage',
    tags,
    summary: "Read a device's connection certificate (its access token and the project key)",
    params: IdParams,
    response: Certificate,
    handler: ({ principal, params }) => devices.certificate(scopeOf(principal), params.id),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/device/:id/certificate/reset',
    access: 'manage',
    tags,
    summary: 'Issue a new device access token; the old one stops working at once',
    params: IdParams,
    response: Certificate,
    handler: ({ principal, params }) => devices.resetAccessToken(scopeOf(principal), params.id),
  });

  endpoint(app, {
    method: 'PUT',
    url: '/api/v1/device/:id/info',
    access: 'manage',
    tags,
    summary: "Update a device's name, description or device key ('' removes the key)",
    params: IdParams,
    body: UpdateInfoBody,
    response: Empty,
    handler: ({ principal, params, body }) => devices.updateInfo(scopeOf(principal), params.id, body),
  });

  endpoint(app, {
    method: 'PUT',
    url: '/api/v1/device/:id/tags',
    access: 'manage',
    tags,
    summary: "Add or change a device's tags (merged with the existing ones)",
    params: IdParams,
    body: TagsBody,
    response: Empty,
    handler: ({ principal, params, body }) => devices.mergeTags(scopeOf(principal), params.id, body.tags),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/device/:id/tags_remove',
    access: 'manage',
    tags,
    summary: 'Remove tags of a device by key',
    params: IdParams,
    body: KeysBody,
    response: Empty,
    handler: ({ principal, params, body }) => devices.removeTags(scopeOf(principal), params.id, body.keys),
  });

  endpoint(app, {
    method: 'PUT',
    url: '/api/v1/device/:id/groups',
    access: 'manage',
    tags,
    summary: 'Replace the groups of a device ([] = no group)',
    params: IdParams,
    body: GroupsBody,
    response: Empty,
    handler: ({ principal, params, body }) => devices.setGroups(scopeOf(principal), params.id, body.groups),
  });

  endpoint(app, {
    method: 'DELETE',
    url: '/api/v1/device/:id',
    access: 'manage',
    tags,
    summary: 'Delete a device',
    params: IdParams,
    response: Empty,
    handler: ({ principal, params }) => devices.delete(scopeOf(principal), params.id),
  });
}
