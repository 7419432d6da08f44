import { boolean, index, integer, jsonb, pgTable, text, uniqueIndex } from 'drizzle-orm/pg-core';
import { created, tags, updated } from './columns.ts';
import { projectRef } from './projects.ts';

/** Device types and what they define: attribute models, data streams, extended-info definitions. */

export const deviceTypes = pgTable(
  'device_types',
  {
    id: text('id').primaryKey(),
    projectId: projectRef(),
    name: text('name').notNull(),
    descr: text('descr').notNull().default(''),
    tags: tags(),
    typeKey: text('type_key').notNull().unique(),
    /** "1" direct device, "2" gateway sub-device, "3" gateway (device-protocol.md §4). */
    connType: text('conn_type').notNull().default('1'),
    connProtocol: text('conn_protocol').notNull().default('mqtt'),
    allowAutoCreate: boolean('allow_auto_create').notNull().default(false),
    /** Raw TCP (device-protocol.md §6): a keep-alive string the device sends, never recorded; null = none. */
    tcpHeartbeat: text('tcp_heartbeat'),
    /** Raw TCP: bytes arriving within this many ms of each other form one message; null = the server's default. */
    tcpFrameGapMs: integer('tcp_frame_gap_ms'),
    createTime: created(),
    updateTime: updated(),
  },
  (t) => [index('device_types_project_idx').on(t.projectId, t.id)],
);

export const attributeModels = pgTable(
  'attribute_models',
  {
    id: text('id').primaryKey(),
    projectId: projectRef(),
    deviceTypeId: text('device_type_id')
      .notNull()
      .references(() => deviceTypes.id, { onDelete: 'cascade' }),
    identifier: text('identifier').notNull(),
    name: text('name').notNull(),
    dataType: text('data_type').notNull(),
    unit: text('unit').notNull().default(''),
    options: jsonb('options').$type<Record<string, unknown>>().notNull().default({}),
    createTime: created(),
    updateTime: updated(),
  },
  (t) => [uniqueIndex('attribute_models_type_ident_uq').on(t.deviceTypeId, t.identifier)],
);

export const dataStreams = pgTable(
  'data_streams',
  {
    id: text('id').primaryKey(),
    projectId: projectRef(),
    deviceTypeId: text('device_type_id')
      .notNull()
      .references(() => deviceTypes.id, { onDelete: 'cascade' }),
    identifier: text('identifier').notNull(),
    name: text('name').notNull(),
    /** hex (binary), text or json (device-protocol.md §7). */
    format: text('format').notNull(),
    tcpBound: boolean('tcp_bound').notNull().default(false),
    mapToAttributes: boolean('map_to_attributes').notNull().default(false),
    createTime: created(),
    updateTime: updated(),
  },
  (t) => [uniqueIndex('data_streams_type_ident_uq').on(t.deviceTypeId, t.identifier)],
);

export const extendInfoDefs = pgTable(
  'extend_info_defs',
  {
    id: text('id').primaryKey(),
    projectId: projectRef(),
    deviceTypeId: text('device_type_id')
      .notNull()
      .references(() => deviceTypes.id, { onDelete: 'cascade' }),
    infoType: text('info_type').notNull(),
    name: text('name').notNull(),
    descr: text('descr').notNull().default(''),
    enabled: boolean('enabled').notNull().default(true),
    options: jsonb('options').$type<Record<string, unknown>>().notNull().default({}),
    createTime: created(),
    updateTime: updated(),
  },
  (t) => [index('extend_info_defs_type_idx').on(t.deviceTypeId)],
);
