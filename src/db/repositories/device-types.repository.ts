import { and, asc, desc, eq, getTableColumns, ne, sql, type SQL } from 'drizzle-orm';
import type { Db, Tx } from '../client.ts';
import { inScope, type Scope } from '../scope.ts';
import { translating, type Translation } from '../errors.ts';
import { attributeModels, dataStreams, deviceInfos, devices, deviceTypes, extendInfoDefs } from '../schema/index.ts';

export type DeviceTypeRow = typeof deviceTypes.$inferSelect;
export type NewDeviceType = typeof deviceTypes.$inferInsert;
export type DeviceTypeWithCount = DeviceTypeRow & { deviceCount: number };
export type AttributeModelRow = typeof attributeModels.$inferSelect;
export type NewAttributeModel = typeof attributeModels.$inferInsert;
export type DataStreamRow = typeof dataStreams.$inferSelect;
export type NewDataStream = typeof dataStreams.$inferInsert;
export type ExtendInfoDefRow = typeof extendInfoDefs.$inferSelect;
export type NewExtendInfoDef = typeof extendInfoDefs.$inferInsert;

/** Devices the scope sees: the project's, narrowed to the customer's bound devices for customer tokens. */
const devicesInScope = (scope: Scope): SQL => inScope(scope, { projectId: devices.projectId, deviceId: devices.id });

/**
 * The named errors of the type's writes: a taken type key or identifier (Duplicate 'type_key',
 * 'attribute_model_ident', 'data_stream_ident'), and a type still used by devices or gone meanwhile
 * (MissingReference 'device_type').
 */
const typeErrors: Translation = {
  unique: {
    type_key: 'type_key',
    attribute_models_type_ident: 'attribute_model_ident',
    data_streams_type_ident: 'data_stream_ident',
  },
  foreignKey: { type_id: 'device_type', project_id: 'project' },
};

/** The type's reads and writes on `db`: the database itself, or one transaction (see `inTransaction`). */
function queries(db: Tx) {
  /** Types with their device count, from one grouped query over (project_id, type_id) — no query per type. */
  function withCounts(scope: Scope, typeId?: string) {
    const counts = db
      .select({ typeId: devices.typeId, n: sql<number>`count(*)::int`.as('n') })
      .from(devices)
      .where(
        and(
          devicesInScope(scope),
          typeId === undefined ? sql`${devices.typeId} is not null` : eq(devices.typeId, typeId),
        ),
      )
      .groupBy(devices.typeId)
      .as('type_counts');
    return db
      .select({ ...getTableColumns(deviceTypes), deviceCount: sql<number>`coalesce(${counts.n}, 0)::int` })
      .from(deviceTypes)
      .leftJoin(counts, eq(counts.typeId, deviceTypes.id));
  }

  const typeIs = (projectId: string, id: string) => and(eq(deviceTypes.id, id), eq(deviceTypes.projectId, projectId));

  return {
    list(scope: Scope): Promise<DeviceTypeWithCount[]> {
      return withCounts(scope)
        .where(eq(deviceTypes.projectId, scope.projectId))
        .orderBy(desc(deviceTypes.createTime), desc(deviceTypes.id));
    },

    async get(scope: Scope, id: string): Promise<DeviceTypeWithCount | undefined> {
      const [row] = await withCounts(scope, id).where(typeIs(scope.projectId, id)).limit(1);
      return row;
    },

    async byId(projectId: string, id: string): Promise<DeviceTypeRow | undefined> {
      const [row] = await db.select().from(deviceTypes).where(typeIs(projectId, id)).limit(1);
      return row;
    },

    /**
     * Locks the type's row until the transaction ends (so only inside `inTransaction`): changes that check
     * rules across its sub-resources run one at a time per type. False when the type does not exist.
     */
    async lock(projectId: string, id: string): Promise<boolean> {
      const rows = await db.select({ id: deviceTypes.id }).from(deviceTypes).where(typeIs(projectId, id)).for('update');
      return rows.length > 0;
    },

    async insert(row: NewDeviceType): Promise<void> {
      await translating(typeErrors, () => db.insert(deviceTypes).values(row));
    },

    async update(projectId: string, id: string, patch: Partial<NewDeviceType>): Promise<boolean> {
      const rows = await translating(typeErrors, () =>
        db.update(deviceTypes).set(patch).where(typeIs(projectId, id)).returning({ id: deviceTypes.id }),
      );
      return rows.length > 0;
    },

    async deviceCount(projectId: string, typeId: string): Promise<number> {
      const [row] = await db
        .select({ n: sql<number>`count(*)::int` })
        .from(devices)
        .where(and(eq(devices.projectId, projectId), eq(devices.typeId, typeId)));
      return row?.n ?? 0;
    },

    /**
     * Deletes the type and, by cascade, its models, streams and info definitions, plus the values stored
     * for those definitions. Devices still using the type make the foreign key refuse the delete.
     */
    async delete(projectId: string, id: string): Promise<boolean> {
      await db
        .delete(deviceInfos)
        .where(
          and(
            eq(deviceInfos.projectId, projectId),
            sql`${deviceInfos.infoId} in (select ${extendInfoDefs.id} from ${extendInfoDefs} where ${extendInfoDefs.projectId} = ${projectId} and ${extendInfoDefs.deviceTypeId} = ${id})`,
          ),
        );
      const rows = await db.delete(deviceTypes).where(typeIs(projectId, id)).returning({ id: deviceTypes.id });
      return rows.length > 0;
    },

    // Attribute models

    attributes(projectId: string, typeId: string): Promise<AttributeModelRow[]> {
      return db
        .select()
        .from(attributeModels)
        .where(and(eq(attributeModels.projectId, projectId), eq(attributeModels.deviceTypeId, typeId)))
        .orderBy(asc(attributeModels.createTime), asc(attributeModels.id));
    },

    async attribute(projectId: string, typeId: string, identifier: string): Promise<AttributeModelRow | undefined> {
      const [row] = await db
        .select()
        .from(attributeModels)
        .where(
          and(
            eq(attributeModels.projectId, projectId),
            eq(attributeModels.deviceTypeId, typeId),
            eq(attributeModels.identifier, identifier),
          ),
        )
        .limit(1);
      return row;
    },

    async insertAttribute(row: NewAttributeModel): Promise<void> {
      await translating(typeErrors, () => db.insert(attributeModels).values(row));
    },

    async updateAttribute(projectId: string, id: string, patch: Partial<NewAttributeModel>): Promise<void> {
      await translating(typeErrors, () =>
        db
          .update(attributeModels)
          .set(patch)
          .where(and(eq(attributeModels.projectId, projectId), eq(attributeModels.id, id))),
      );
    },

    async deleteAttribute(projectId: string, id: string): Promise<void> {
      await db.delete(attributeModels).where(and(eq(attributeModels.projectId, projectId), eq(attributeModels.id, id)));
    },

    // Custom data streams

    streams(projectId: string, typeId: string): Promise<DataStreamRow[]> {
      return db
        .select()
        .from(dataStreams)
        .where(and(eq(dataStreams.projectId, projectId), eq(dataStreams.deviceTypeId, typeId)))
        .orderBy(asc(dataStreams.createTime), asc(dataStreams.id));
    },

    async stream(projectId: string, typeId: string, identifier: string): Promise<DataStreamRow | undefined> {
      const [row] = await db
        .select()
        .from(dataStreams)
        .where(
          and(
            eq(dataStreams.projectId, projectId),
            eq(dataStreams.deviceTypeId, typeId),
            eq(dataStreams.identifier, identifier),
          ),
        )
        .limit(1);
      return row;
    },

    /** The type's TCP-bound stream other than `exceptId`, if any. */
    async tcpBoundStream(
      projectId: string,
      typeId: string,
      exceptId: string | undefined,
    ): Promise<DataStreamRow | undefined> {
      const [row] = await db
        .select()
        .from(dataStreams)
        .where(
          and(
            eq(dataStreams.projectId, projectId),
            eq(dataStreams.deviceTypeId, typeId),
            eq(dataStreams.tcpBound, true),
            ...(exceptId ? [ne(dataStreams.id, exceptId)] : []),
          ),
        )
        .limit(1);
      return row;
    },

    async insertStream(row: NewDataStream): Promise<void> {
      await translating(typeErrors, () => db.insert(dataStreams).values(row));
    },

    async updateStream(projectId: string, id: string, patch: Partial<NewDataStream>): Promise<void> {
      await translating(typeErrors, () =>
        db
          .update(dataStreams)
          .set(patch)
          .where(and(eq(dataStreams.projectId, projectId), eq(dataStreams.id, id))),
      );
    },

    async deleteStream(projectId: string, id: string): Promise<void> {
      await db.delete(dataStreams).where(and(eq(dataStreams.projectId, projectId), eq(dataStreams.id, id)));
    },

    // Extend-info definitions

    infoDefs(projectId: string, typeId: string): Promise<ExtendInfoDefRow[]> {
      return db
        .select()
        .from(extendInfoDefs)
        .where(and(eq(extendInfoDefs.projectId, projectId), eq(extendInfoDefs.deviceTypeId, typeId)))
        .orderBy(asc(extendInfoDefs.createTime), asc(extendInfoDefs.id));
    },

    async infoDef(projectId: string, typeId: string, id: string): Promise<ExtendInfoDefRow | undefined> {
      const [row] = await db
        .select()
        .from(extendInfoDefs)
        .where(
          and(
            eq(extendInfoDefs.projectId, projectId),
            eq(extendInfoDefs.deviceTypeId, typeId),
            eq(extendInfoDefs.id, id),
          ),
        )
        .limit(1);
      return row;
    },

    async insertInfoDef(row: NewExtendInfoDef): Promise<void> {
      await translating(typeErrors, () => db.insert(extendInfoDefs).values(row));
    },

    async updateInfoDef(projectId: string, id: string, patch: Partial<NewExtendInfoDef>): Promise<void> {
      await db
        .update(extendInfoDefs)
        .set(patch)
        .where(and(eq(extendInfoDefs.projectId, projectId), eq(extendInfoDefs.id, id)));
    },
  };
}
/** The type's reads and writes bound to one transaction (the `r` of `inTransaction`). */
export type DeviceTypesInTransaction = ReturnType<typeof queries>;

export function createDeviceTypesRepository(db: Db) {
  return {
    ...queries(db),

    /**
     * Runs `work` as one transaction (a unit of work): `r` is this repository bound to it, so a
     * service locks the type, checks and writes without naming the driver's transaction. Its driver
     * errors come out translated like the single writes'.
     */
    inTransaction<T>(work: (r: DeviceTypesInTransaction) => Promise<T>): Promise<T> {
      return translating(typeErrors, () => db.transaction((tx) => work(queries(tx))));
    },

    /** Deletes a definition and every device's value of it. */
    async deleteInfoDef(projectId: string, id: string): Promise<void> {
      await db.transaction(async (tx) => {
        await tx.delete(deviceInfos).where(and(eq(deviceInfos.projectId, projectId), eq(deviceInfos.infoId, id)));
        await tx.delete(extendInfoDefs).where(and(eq(extendInfoDefs.projectId, projectId), eq(extendInfoDefs.id, id)));
      });
    },
  };
}
export type DeviceTypesRepository = ReturnType<typeof createDeviceTypesRepository>;
