import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  index,
  jsonb,
  pgTable,
  primaryKey,
  smallint,
  text,
  uniqueIndex,
  type AnyPgColumn,
} from 'drizzle-orm/pg-core';
import { created, ms, tags, updated } from './columns.ts';
import { deviceTypes } from './device-types.ts';
import { customers, projectRef } from './projects.ts';

/** Devices, their groups and customer bindings, and what they report: infos, current values, events. */

export const deviceGroups = pgTable(
  'device_groups',
  {
    id: text('id').primaryKey(),
    projectId: projectRef(),
    parentId: text('parent_id').references((): AnyPgColumn => deviceGroups.id, { onDelete: 'restrict' }),
    name: text('name').notNull(),
    descr: text('descr').notNull().default(''),
    tags: tags(),
    createTime: created(),
    updateTime: updated(),
  },
  (t) => [
    index('device_groups_project_parent_idx').on(t.projectId, t.parentId),
    // The ON DELETE RESTRICT check of a parent looks children up by parent alone.
    index('device_groups_parent_idx').on(t.parentId),
  ],
);

export interface AlarmState {
  level: number;
  since: number;
  rule: string | null;
}

export const devices = pgTable(
  'devices',
  {
    id: text('id').primaryKey(),
    projectId: projectRef(),
    typeId: text('type_id').references(() => deviceTypes.id, { onDelete: 'restrict' }),
    name: text('name').notNull(),
    descr: text('descr').notNull().default(''),
    deviceKey: text('device_key'),
    /** The device's own credential; the API serves it back (certificate), so it is kept retrievable. */
    accessToken: text('access_token').notNull().unique(),
    viewToken: text('view_token').notNull().unique(),
    deviceCode: text('device_code').notNull(),
    tags: tags(),
    disabled: boolean('disabled').notNull().default(false),
    online: boolean('online').notNull().default(false),
    /**
     * Cluster mode (docs/cluster.md §3): the node that holds the device's session, or held it last, and the
     * order of that session among the device's sessions cluster-wide (a later login has a greater epoch).
     * A node writes "offline" only over its own session, and "online" only over an older one. Null on one node.
     */
    sessionNode: text('session_node'),
    sessionEpoch: bigint('session_epoch', { mode: 'number' }),
    /** Ever connected or reported (http-api.md §3 devices_stat). */
    active: boolean('active').notNull().default(false),
    /** Latest time of each kind of message (device-protocol.md §11). */
    activeTs: jsonb('active_ts').$type<Record<string, number>>().notNull().default({}),
    /** 0 = normal; 1 normal alarm, 2 serious, 3 urgent. */
    alarmLevel: smallint('alarm_level').notNull().default(0),
    alarm: jsonb('alarm').$type<AlarmState | null>(),
    /** A gateway sub-device (device-protocol.md §8): its gateway, and its address unique within it. */
    gatewayId: text('gateway_id').references((): AnyPgColumn => devices.id, { onDelete: 'set null' }),
    subAddress: text('sub_address'),
    createTime: created(),
    updateTime: updated(),
  },
  (t) => [
    uniqueIndex('devices_gateway_address_uq')
      .on(t.gatewayId, t.subAddress)
      .where(sql`gateway_id is not null`),
    // Ids are time-ordered, so (project_id, id) serves "newest first" paging of the device list.
    index('devices_project_id_idx').on(t.projectId, t.id),
    index('devices_project_type_id_idx').on(t.projectId, t.typeId, t.id),
    // The ON DELETE RESTRICT check of a device type looks devices up by type alone.
    index('devices_type_idx').on(t.typeId),
    uniqueIndex('devices_project_device_key_uq')
      .on(t.projectId, t.deviceKey)
      .where(sql`device_key is not null`),
    uniqueIndex('devices_project_code_uq').on(t.projectId, t.deviceCode),
    // No index holds `online` or `active`: the presence flush rewrites them at every connect, disconnect and
    // first report, and an indexed column changed makes that a new entry in every index of the table instead
    // of an update in place (HOT, docs/scaling.md §4). devices_stat counts the project's rows through
    // devices_project_id_idx, and is cached (devices.service.ts).
  ],
);

export const deviceGroupMembers = pgTable(
  'device_group_members',
  {
    groupId: text('group_id')
      .notNull()
      .references(() => deviceGroups.id, { onDelete: 'cascade' }),
    deviceId: text('device_id')
      .notNull()
      .references(() => devices.id, { onDelete: 'cascade' }),
    projectId: projectRef(),
  },
  (t) => [primaryKey({ columns: [t.groupId, t.deviceId] }), index('device_group_members_device_idx').on(t.deviceId)],
);

export const customerDevices = pgTable(
  'customer_devices',
  {
    customerId: text('customer_id')
      .notNull()
      .references(() => customers.id, { onDelete: 'cascade' }),
    deviceId: text('device_id')
      .notNull()
      .references(() => devices.id, { onDelete: 'cascade' }),
    projectId: projectRef(),
    createTime: created(),
  },
  (t) => [primaryKey({ columns: [t.customerId, t.deviceId] }), index('customer_devices_device_idx').on(t.deviceId)],
);

/** Values of a device's extended information: standard infos (by type name) and type-defined ones (by id). */
export const deviceInfos = pgTable(
  'device_infos',
  {
    deviceId: text('device_id')
      .notNull()
      .references(() => devices.id, { onDelete: 'cascade' }),
    infoId: text('info_id').notNull(),
    projectId: projectRef(),
    value: jsonb('value').$type<unknown>().notNull(),
    createTime: created(),
    updateTime: updated(),
  },
  (t) => [
    primaryKey({ columns: [t.deviceId, t.infoId] }),
    // Deleting an info definition removes its values across the project's devices.
    index('device_infos_project_info_idx').on(t.projectId, t.infoId),
  ],
);

/** Current value of each attribute of a device (device-protocol.md §3; history is the telemetry issue). */
export const attributeValues = pgTable(
  'attribute_values',
  {
    deviceId: text('device_id')
      .notNull()
      .references(() => devices.id, { onDelete: 'cascade' }),
    identifier: text('identifier').notNull(),
    projectId: projectRef(),
    value: jsonb('value').$type<unknown>().notNull(),
    /** Where the value came from: `report` by the device, `push` to it, `cloud` attribute (http-api.md §3). */
    attrType: text('attr_type').notNull(),
    /** number | boolean | string | object | array */
    dataType: text('data_type').notNull(),
    ts: ms('ts').notNull(),
  },
  (t) => [primaryKey({ columns: [t.deviceId, t.identifier] })],
);

/** Events reported by devices (`event/report/<id>`): logged, not written into attributes. */
export const deviceEvents = pgTable(
  'device_events',
  {
    id: text('id').primaryKey(),
    projectId: projectRef(),
    deviceId: text('device_id')
      .notNull()
      .references(() => devices.id, { onDelete: 'cascade' }),
    method: text('method').notNull(),
    params: jsonb('params').$type<unknown>().notNull().default({}),
    ts: ms('ts').notNull(),
  },
  (t) => [index('device_events_device_id_idx').on(t.deviceId, t.id)],
);
