import { and, eq, inArray, sql } from 'drizzle-orm';
import type { Db } from '../client.ts';
import { attributeValues } from '../schema/index.ts';

export type AttrType = 'report' | 'push' | 'cloud';
export type AttrDataType = 'number' | 'boolean' | 'string' | 'object' | 'array';

export interface AttributeValueInput {
  identifier: string;
  value: unknown;
  dataType: AttrDataType;
}

export interface AttributeValueRow {
  identifier: string;
  value: unknown;
  attrType: string;
  dataType: string;
  ts: number;
}

/** Current value of each attribute of a device (device-protocol.md §3). */
export function createAttributeValuesRepository(db: Db) {
  return {
    /**
     * Writes all values of one message in one statement. A value older than the stored one does not
     * replace it: "current" is the newest, whatever order back-dated reports arrive in.
     */
    async upsert(
      projectId: string,
      deviceId: string,
      values: AttributeValueInput[],
      attrType: AttrType,
      ts: number,
    ): Promise<void> {
      if (!values.length) return;
      await db
        .insert(attributeValues)
        .values(
          values.map((v) => ({
            deviceId,
            identifier: v.identifier,
            projectId,
            value: v.value,
            attrType,
            dataType: v.dataType,
            ts,
          })),
        )
        .onConflictDoUpdate({
          target: [attributeValues.deviceId, attributeValues.identifier],
          set: {
            value: sql`excluded.value`,
            attrType: sql`excluded.attr_type`,
            dataType: sql`excluded.data_type`,
            ts: sql`excluded.ts`,
          },
          setWhere: sql`${attributeValues.ts} <= excluded.ts`,
        });
    },

    /** Removes current values of a device (`attributes_remove`). */
    async remove(projectId: string, deviceId: string, keys: string[]): Promise<void> {
      if (!keys.length) return;
      await db
        .delete(attributeValues)
        .where(
          and(
            eq(attributeValues.deviceId, deviceId),
            eq(attributeValues.projectId, projectId),
            inArray(attributeValues.identifier, keys),
          ),
        );
    },

    /** The device's current values, all or only `keys`, by identifier. */
    async list(projectId: string, deviceId: string, keys?: string[]): Promise<AttributeValueRow[]> {
      if (keys && !keys.length) return [];
      return db
        .select({
          identifier: attributeValues.identifier,
          value: attributeValues.value,
          attrType: attributeValues.attrType,
          dataType: attributeValues.dataType,
          ts: attributeValues.ts,
        })
        .from(attributeValues)
        .where(
          and(
            eq(attributeValues.deviceId, deviceId),
            eq(attributeValues.projectId, projectId),
            ...(keys ? [inArray(attributeValues.identifier, keys)] : []),
          ),
        )
        .orderBy(attributeValues.identifier);
    },
  };
}
export type AttributeValuesRepository = ReturnType<typeof createAttributeValuesRepository>;
