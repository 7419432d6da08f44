import type { Db } from '../../db/client.ts';
import type { DevicesRepository } from '../../db/repositories/devices.repository.ts';

export function createExtendInfosService(_deps: { devices: DevicesRepository; db: Db; clock: () => number }) {
  return {};
}
export type ExtendInfosService = ReturnType<typeof createExtendInfosService>;
