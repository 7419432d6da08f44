// Skeleton: filled in by the area's implementation.
import type { Db } from '../../db/client.ts';

export function createViewKeyService(_deps: { db: Db; clock: () => number; auth?: unknown }) {
  return {};
}
export type ViewKeyService = ReturnType<typeof createViewKeyService>;
