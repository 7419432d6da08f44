// Skeleton: filled in by the area's implementation.
import type { Db } from '../../db/client.ts';

export function createAdminsService(_deps: { db: Db; clock: () => number; auth?: unknown }) {
  return {};
}
export type AdminsService = ReturnType<typeof createAdminsService>;
