import { and, eq } from 'drizzle-orm';
import type { Db } from '../client.ts';
import { dataStreams } from '../schema.ts';

export function createDataPushRepository(db: Db) {
  return {
    /** Identifiers of the custom data streams a device type defines (device-protocol.md §7). */
    async streamIdentifiers(projectId: string, typeId: string): Promise<string[]> {
      const rows = await db
        .select({ identifier: dataStreams.identifier })
        .from(dataStreams)
        .where(and(eq(dataStreams.projectId, projectId), eq(dataStreams.deviceTypeId, typeId)));
      return rows.map((r) => r.identifier);
    },
  };
}
export type DataPushRepository = ReturnType<typeof createDataPushRepository>;
