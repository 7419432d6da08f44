import { attributesGet as decode } from '../../core/payloads.ts';
import type { UpstreamHandler } from './context.ts';

/** `attributes/get/<id>` (device-protocol.md §3): reported, pushed and cloud values, all or some keys. */
export const attributesGet: UpstreamHandler<'attributes_get'> = async ({ services, identity }, _up, payload) => {
  const { keys } = decode(payload);
  const attributes = await services.currentValues.get(identity.projectId, identity.deviceId, keys);
  return { result: 1, attributes };
};
