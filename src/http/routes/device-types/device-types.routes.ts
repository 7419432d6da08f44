import type { FastifyInstance } from 'fastify';
import { scopeOf } from '../../../domain/auth/principal.ts';
import type { Services } from '../../../composition/services.ts';
import { IdParams } from '../common.schema.ts';
import { Empty, endpoint } from '../route.ts';
import {
  Attribute,
  AttributeList,
  AttributeParams,
  CreateAttributeBody,
  CreatedAttribute,
  CreatedDeviceType,
  CreatedInfo,
  CreatedStream,
  CreateDeviceTypeBody,
  CreateInfoBody,
  CreateStreamBody,
  DeviceType,
  DeviceTypeList,
  ExtendInfo,
  ExtendInfoList,
  InfoParams,
  Stream,
  StreamList,
  StreamParams,
  TypeKey,
  UpdateAttributeBody,
  UpdateDeviceTypeBody,
  UpdateInfoBody,
  UpdateStreamBody,
} from './device-types.schema.ts';

/** Device types (http-api.md §3) and their management calls (§4 first bullet). */
export function deviceTypeRoutes(app: FastifyInstance, { services }: { services: Services }) {
  const { deviceTypes } = services;
  const tags = ['Device types'];

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/device_types',
    access: 'project',
    tags,
    summary: 'List device types, newest first, with their device counts',
    response: DeviceTypeList,
    handler: ({ principal }) => deviceTypes.list(scopeOf(principal)),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/device_type',
    access: 'manage',
    tags,
    summary: 'Create a device type (its type key is generated)',
    body: CreateDeviceTypeBody,
    response: CreatedDeviceType,
    handler: ({ principal, body }) => deviceTypes.create(scopeOf(principal), body),
  });

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/device_type/:id',
    access: 'project',
    tags,
    summary: 'Read a device type',
    params: IdParams,
    response: DeviceType,
    handler: ({ principal, params }) => deviceTypes.get(scopeOf(principal), params.id),
  });

  endpoint(app, {
    method: 'PUT',
    url: '/api/v1/device_type/:id',
    access: 'manage',
    tags,
    summary: 'Update a device type (only the fields given)',
    params: IdParams,
    body: UpdateDeviceTypeBody,
    response: DeviceType,
    handler: ({ principal, params, body }) => deviceTypes.update(scopeOf(principal), params.id, body),
  });

  endpoint(app, {
    method: 'DELETE',
    url: '/api/v1/device_type/:id',
    access: 'manage',
    tags,
    summary: 'Delete a device type with its models, streams and info definitions',
    description: 'Answers 422 while devices use the type.',
    params: IdParams,
    response: Empty,
    handler: ({ principal, params }) => deviceTypes.delete(scopeOf(principal), params.id),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/device_type/:id/type_key_reset',
    access: 'manage',
    tags,
    summary: 'Issue a new type key; the old one stops working at once',
    params: IdParams,
    response: TypeKey,
    handler: ({ principal, params }) => deviceTypes.resetTypeKey(scopeOf(principal), params.id),
  });

  // Attribute models

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/device_type/:id/attributes',
    access: 'project',
    tags,
    summary: 'List the attribute models of a device type',
    params: IdParams,
    response: AttributeList,
    handler: ({ principal, params }) => deviceTypes.listAttributes(scopeOf(principal), params.id),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/device_type/:id/attribute',
    access: 'manage',
    tags,
    summary: 'Add an attribute model',
    description: 'The identifier is unique within the type (409).',
    params: IdParams,
    body: CreateAttributeBody,
    response: CreatedAttribute,
    handler: ({ principal, params, body }) => deviceTypes.createAttribute(scopeOf(principal), params.id, body),
  });

  endpoint(app, {
    method: 'PUT',
    url: '/api/v1/device_type/:id/attribute/:identifier',
    access: 'manage',
    tags,
    summary: 'Update an attribute model',
    params: AttributeParams,
    body: UpdateAttributeBody,
    response: Attribute,
    handler: ({ principal, params, body }) =>
      deviceTypes.updateAttribute(scopeOf(principal), params.id, params.identifier, body),
  });

  endpoint(app, {
    method: 'DELETE',
    url: '/api/v1/device_type/:id/attribute/:identifier',
    access: 'manage',
    tags,
    summary: 'Delete an attribute model',
    params: AttributeParams,
    response: Empty,
    handler: ({ principal, params }) => deviceTypes.deleteAttribute(scopeOf(principal), params.id, params.identifier),
  });

  // Custom data streams

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/device_type/:id/data_streams',
    access: 'project',
    tags,
    summary: 'List the custom data streams of a device type',
    params: IdParams,
    response: StreamList,
    handler: ({ principal, params }) => deviceTypes.listDataStreams(scopeOf(principal), params.id),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/device_type/:id/data_stream',
    access: 'manage',
    tags,
    summary: 'Add a custom data stream',
    description: 'The identifier is unique within the type (409); at most one stream per type is bound to TCP (409).',
    params: IdParams,
    body: CreateStreamBody,
    response: CreatedStream,
    handler: ({ principal, params, body }) => deviceTypes.createDataStream(scopeOf(principal), params.id, body),
  });

  endpoint(app, {
    method: 'PUT',
    url: '/api/v1/device_type/:id/data_stream/:identifier',
    access: 'manage',
    tags,
    summary: 'Update a custom data stream',
    params: StreamParams,
    body: UpdateStreamBody,
    response: Stream,
    handler: ({ principal, params, body }) =>
      deviceTypes.updateDataStream(scopeOf(principal), params.id, params.identifier, body),
  });

  endpoint(app, {
    method: 'DELETE',
    url: '/api/v1/device_type/:id/data_stream/:identifier',
    access: 'manage',
    tags,
    summary: 'Delete a custom data stream',
    params: StreamParams,
    response: Empty,
    handler: ({ principal, params }) => deviceTypes.deleteDataStream(scopeOf(principal), params.id, params.identifier),
  });

  // Extend-info definitions

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/device_type/:id/extend_infos',
    access: 'project',
    tags,
    summary: 'List the extended information of a device type: the standard infos, then its own definitions',
    params: IdParams,
    response: ExtendInfoList,
    handler: ({ principal, params }) => deviceTypes.listExtendInfos(scopeOf(principal), params.id),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/device_type/:id/extend_info',
    access: 'manage',
    tags,
    summary: 'Define an extended information of the type',
    params: IdParams,
    body: CreateInfoBody,
    response: CreatedInfo,
    handler: ({ principal, params, body }) => deviceTypes.createExtendInfo(scopeOf(principal), params.id, body),
  });

  endpoint(app, {
    method: 'PUT',
    url: '/api/v1/device_type/:id/extend_info/:info_id',
    access: 'manage',
    tags,
    summary: 'Update an extended-information definition',
    params: InfoParams,
    body: UpdateInfoBody,
    response: ExtendInfo,
    handler: ({ principal, params, body }) =>
      deviceTypes.updateExtendInfo(scopeOf(principal), params.id, params.info_id, body),
  });

  endpoint(app, {
    method: 'DELETE',
    url: '/api/v1/device_type/:id/extend_info/:info_id',
    access: 'manage',
    tags,
    summary: "Delete an extended-information definition and every device's value of it",
    params: InfoParams,
    response: Empty,
    handler: ({ principal, params }) => deviceTypes.deleteExtendInfo(scopeOf(principal), params.id, params.info_id),
  });
}
