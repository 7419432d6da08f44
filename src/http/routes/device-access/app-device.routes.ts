import type { FastifyInstance } from 'fastify';
import type { Services } from '../../../composition/services.ts';
import { DataSetBody, PushModeQuery, StreamIdentifier } from '../control/control.schema.ts';
import { Empty, endpoint } from '../route.ts';
import { AttributesBody, AttributesResult, KeysQuery, TokenParams } from './device-access.schema.ts';
import { deviceOfRequest } from './token-auth.ts';

/**
 * Application-side calls keyed by a device access token and the `Project-Key` header
 * (device-protocol.md §5): the project envelope, no bearer token.
 */
export function appDeviceRoutes(app: FastifyInstance, { services }: { services: Services }) {
  const { currentValues, dataStreams, deviceAuth } = services;
  const tags = ['Device access (application side)'];
  const note = 'Header `Project-Key` with the device access token in the path identify the device.';
  const scopeOf = (d: { projectId: string }) => ({ projectId: d.projectId });

  endpoint(app, {
    method: 'POST',
    url: '/app/device/v1/:access_token/attributes',
    access: 'public',
    tags,
    summary: 'Push attributes to the device (it must be online) and record them as current values',
    description: `${note} An offline device answers 422.`,
    params: TokenParams,
    body: AttributesBody,
    response: Empty,
    handler: async ({ params, body, req }) => {
      const device = await deviceOfRequest(deviceAuth, req, params.access_token);
      await currentValues.push(scopeOf(device), device.deviceId, body);
      return {};
    },
  });

  endpoint(app, {
    method: 'GET',
    url: '/app/device/v1/:access_token/attributes',
    access: 'public',
    tags,
    summary: "Read the device's current attributes (reported, pushed and cloud)",
    description: `${note} \`?keys=a,b\` reads only these attributes.`,
    params: TokenParams,
    query: KeysQuery,
    response: AttributesResult,
    handler: async ({ params, query, req }) => {
      const device = await deviceOfRequest(deviceAuth, req, params.access_token);
      return { attributes: await currentValues.get(device.projectId, device.deviceId, query.keys) };
    },
  });

  endpoint(app, {
    method: 'PUT',
    url: '/app/device/v1/:access_token/attributes',
    access: 'public',
    tags,
    summary: 'Update cloud attributes of the device (stored only; the device may be offline)',
    description: note,
    params: TokenParams,
    body: AttributesBody,
    response: Empty,
    handler: async ({ params, body, req }) => {
      const device = await deviceOfRequest(deviceAuth, req, params.access_token);
      await currentValues.setCloud(scopeOf(device), device.deviceId, body);
      return {};
    },
  });

  endpoint(app, {
    method: 'POST',
    url: '/app/device/v1/:access_token/data/:identifier/set',
    access: 'public',
    tags,
    summary: 'Send bytes to a custom data stream of the device',
    description: `${note} \`{type: "hex"|"text"|"json", msg}\`; \`push_mode\` (mqtt, default, or tcp) must be how the device is connected.`,
    params: TokenParams.extend({ identifier: StreamIdentifier }),
    query: PushModeQuery,
    body: DataSetBody,
    response: Empty,
    handler: async ({ params, query, body, req }) => {
      const device = await deviceOfRequest(deviceAuth, req, params.access_token);
      await dataStreams.push(scopeOf(device), device.deviceId, params.identifier, body, query.push_mode);
      return {};
    },
  });
}
