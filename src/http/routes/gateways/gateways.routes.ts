import type { FastifyInstance } from 'fastify';
import { scopeOf } from '../../../domain/auth/principal.ts';
import type { Services } from '../../../composition/services.ts';
import { IdParams } from '../common.schema.ts';
import { endpoint } from '../route.ts';
import { AttachBody, Attached, DetachBody, Detached, SubDeviceList, SubDeviceQuery } from './gateways.schema.ts';

/** Gateways and sub-devices (device-protocol.md §8): `:id` is the gateway. */
export function gatewayRoutes(app: FastifyInstance, { services }: { services: Services }) {
  const { gateways } = services;
  const tags = ['Gateways'];

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/device/:id/sub_devices',
    access: 'manage',
    tags,
    summary: 'Attach a sub-device to a gateway at an address',
    description:
      'The gateway is a device whose device type has conn_type "3"; the sub-device a device whose type has conn_type "2" (an untyped device is a ' +
      'direct device and cannot be attached). Both belong to the project. The address is unique within the gateway (409 when taken). ' +
      'A device belongs to at most one gateway: attaching a device of another gateway is a 409 (detach it first); attaching it again to the ' +
      'same gateway changes its address. A sub-device online through the gateway goes offline when its attachment changes.',
    params: IdParams,
    body: AttachBody,
    response: Attached,
    handler: ({ principal, params, body }) => gateways.attach(scopeOf(principal), params.id, body),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/device/:id/sub_devices_remove',
    access: 'manage',
    tags,
    summary: 'Detach sub-devices from a gateway (ids that are not attached to it are ignored)',
    description: 'A detached sub-device that was online through the gateway goes offline; the devices themselves stay.',
    params: IdParams,
    body: DetachBody,
    response: Detached,
    handler: ({ principal, params, body }) => gateways.detach(scopeOf(principal), params.id, body.devices),
  });

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/device/:id/sub_devices',
    access: 'manage',
    tags,
    summary: "A gateway's sub-devices, by address",
    description:
      '`online` is live: the gateway said `gateway/connect` for the sub-device and is still connected. `page_records` is 1–500 (default 100).',
    params: IdParams,
    query: SubDeviceQuery,
    response: SubDeviceList,
    handler: ({ principal, params, query }) =>
      gateways.list(scopeOf(principal), params.id, query.page, query.page_records),
  });
}
