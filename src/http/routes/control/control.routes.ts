import type { FastifyInstance } from 'fastify';
import { scopeOf } from '../../../domain/auth/principal.ts';
import type { Services } from '../../../composition/services.ts';
import { IdParams } from '../common.schema.ts';
import { Empty, endpoint } from '../route.ts';
import { ControlAttributesBody, DataSetBody, DeviceStreamParams, PushModeQuery } from './control.schema.ts';

/** Device communication of the project API (http-api.md §3), except commands. */
export function controlRoutes(app: FastifyInstance, { services }: { services: Services }) {
  const { currentValues, dataStreams } = services;
  const tags = ['Device control'];

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/control/device/:id/attributes',
    access: 'manage',
    tags,
    summary: 'Push attributes to the device on `attributes/push` and record them as its current values',
    description: 'The device must be online (422 otherwise).',
    params: IdParams,
    body: ControlAttributesBody,
    response: Empty,
    handler: ({ principal, params, body }) => currentValues.push(scopeOf(principal), params.id, body),
  });

  endpoint(app, {
    method: 'PUT',
    url: '/api/v1/control/device/:id/attributes',
    access: 'manage',
    tags,
    summary: 'Update cloud attributes: stored only, read by the device with `attributes/get`; it may be offline',
    params: IdParams,
    body: ControlAttributesBody,
    response: Empty,
    handler: ({ principal, params, body }) => currentValues.setCloud(scopeOf(principal), params.id, body),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/control/device/:id/data/:identifier/set',
    access: 'manage',
    tags,
    summary: 'Send bytes to a custom data stream of the device',
    description:
      '`{type: "hex"|"text"|"json", msg}` (`message` is accepted for `msg`): hex digits (spaces allowed) → bytes, text → UTF-8, ' +
      'json → serialized. `push_mode` (mqtt, default, or tcp) must be how the device is connected (422 otherwise). When the ' +
      "device's type defines data streams, `identifier` must be one of them.",
    params: DeviceStreamParams,
    query: PushModeQuery,
    body: DataSetBody,
    response: Empty,
    handler: ({ principal, params, query, body }) =>
      dataStreams.push(scopeOf(principal), params.id, params.identifier, body, query.push_mode),
  });
}
