import type { DevicesRepository, DeviceWithType } from '../../db/repositories/devices.repository.ts';
import { NotFound } from '../../errors.ts';
import type { Scope } from '../auth/principal.ts';

/**
 * The device as the caller may see it: in the caller's project and, for a customer, bound to them.
 * Anything else is "not found" — another project's device never reveals that it exists (http-api.md §1).
 */
export async function deviceInScope(
  devices: Pick<DevicesRepository, 'get'>,
  scope: Scope,
  id: string,
): Promise<DeviceWithType> {
  const device = await devices.get(scope, id);
  if (!device) throw new NotFound('Device');
  return device;
}
