import { and, asc, eq, inArray, sql } from 'drizzle-orm';
import type { Db } from '../client.ts';
import { deviceInfos, extendInfoDefs } from '../schema/index.ts';

export type DeviceInfoRow = typeof deviceInfos.$inferSelect;
export type ExtendInfoDefRow = typeof extendInfoDefs.$inferSelect;

/** Values of a device's extended information and the definitions of its type. */
export function createDeviceInfosRepository(db: Db) {
  return {
    async definitions(projectId: string, typeId: string): Promise<ExtendInfoDefRow[]> {
      return db
        .select()
        .from(extendInfoDefs)
        .where(and(eq(extendInfoDefs.projectId, projectId), eq(extendInfoDefs.deviceTypeId, typeId)))
        .orderBy(asc(extendInfoDefs.id));
    },

    async values(projectId: string, deviceId: string): Promise<DeviceInfoRow[]> {
      return db
        .select()
        .from(deviceInfos)
        .where(and(eq(deviceInfos.projectId, projectId), eq(deviceInfos.deviceId, deviceId)));
    },

    async valuesOf(projectId: string, deviceId: string, infoIds: string[]): Promise<DeviceInfoRow[]> {
      if (!infoIds.length) return [];
      return db
        .select()
        .from(deviceInfos)
        .where(
          and(
            eq(deviceInfos.projectId, projectId),
            eq(deviceInfos.deviceId, deviceId),
            inArray(deviceInfos.infoId, infoIds),
          ),
        );
    },

    /** Upserts several values at once; the creation time of an existing value is kept. */
    async upsert(
      projectId: string,
      deviceId: string,
      values: Array<{ infoId: string; value: unknown }>,
      now: number,
    ): Promise<void> {
      if (!values.length) return;
      await db
        .insert(deviceInfos)
        .values(
          values.map((v) => ({
            deviceId,
            projectId,
            infoId: v.infoId,
            value: v.value,
            createTime: now,
            updateTime: now,
          })),
        )
        .onConflictDoUpdate({
          target: [deviceInfos.deviceId, deviceInfos.infoId],
          set: { value: sql`excluded.value`, updateTime: now },
        });
    },
  };
}
export type DeviceInfosRepository = ReturnType<typeof createDeviceInfosRepository>;
