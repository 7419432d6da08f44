// Skeleton: filled in by the area's implementation.
import type { Db } from '../../db/client.ts';

export function createDeviceTypesService(_deps: { db: Db; clock: () => number; auth?: unknown }) {
  return {};
}
export type DeviceTypesService = ReturnType<typeof createDeviceTypesService>;
