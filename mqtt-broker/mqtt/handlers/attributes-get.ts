import { attributesGet as decode } from '../../core/payloads.ts';
import type { DeviceIdentity, DevicePort } from '../../core/port.ts';
import type { UpstreamHandler } from './context.ts';

/** A device's reported, pushed and cloud values, all or `keys` (a direct device, or a gateway's sub-device). */
export const currentAttributes = (
  services: Pick<DevicePort, 'currentValues'>,
  identity: DeviceIdentity,
  keys: string[] | undefined,
): Promise<Record<string, unknown>> => services.currentValues.get(identity.projectId, identity.deviceId, keys);

/** `attributes/get/<id>` (device-protocol.md §3): reported, pushed and cloud values, all or some keys. */
export const attributesGet: UpstreamHandler<'attributes_get'> = async ({ services, identity }, _up, payload) => {
  const { keys } = decode(payload);
  const attributes = await currentAttributes(services, identity, keys);
  return { result: 1, attributes };
};
