import { bigint, index, pgTable, text } from 'drizzle-orm/pg-core';
import { bytea, ms } from './columns.ts';
import { devices } from './devices.ts';
import { projectRef } from './projects.ts';

/** Custom data messages and the ingest's bookkeeping (attribute_history itself is created by migration 0002). */

/** Every custom-data-stream message, up or down (device-protocol.md §7). */
export const dataMessages = pgTable(
  'data_messages',
  {
    /** Time-ordered: pages newest first by id. */
    id: text('id').primaryKey(),
    projectId: projectRef(),
    deviceId: text('device_id')
      .notNull()
      .references(() => devices.id, { onDelete: 'cascade' }),
    identifier: text('identifier').notNull(),
    /** `up` from the device, `down` to it. */
    direction: text('direction').$type<'up' | 'down'>().notNull(),
    /** mqtt | tcp */
    transport: text('transport').$type<'mqtt' | 'tcp'>().notNull(),
    payload: bytea('payload').notNull(),
    ts: ms('ts').notNull(),
  },
  (t) => [
    index('data_messages_device_stream_idx').on(t.deviceId, t.identifier, t.id),
    index('data_messages_project_ts_idx').on(t.projectId, t.ts),
  ],
);

/**
 * Durable markers of the telemetry pipeline: `current_values` = every fresh report committed before
 * this time has its current value flushed (src/domain/telemetry/current-cache.ts recovers the rest
 * from history after a crash).
 */
export const telemetryCheckpoints = pgTable('telemetry_checkpoints', {
  name: text('name').primaryKey(),
  ts: ms('ts').notNull(),
});

/**
 * Batches of the ingest pipeline that committed, by id, written in the batch's own statement or
 * transaction (src/domain/telemetry/ingest.ts): when the connection is lost between the commit and its
 * answer, the retry asks here instead of writing the batch twice. Kept an hour (the retention job).
 */
export const ingestCommits = pgTable('ingest_commits', {
  id: text('id').primaryKey(),
  createTime: ms('create_time').notNull(),
});

/**
 * The receipts of the QoS 1 reports of an ingest batch (device-protocol.md §3.3), written in the batch's own
 * statement: one 64-bit key per report (device, packet id, topic and payload hashed). A batch's row is deleted
 * once its acknowledgements have been out a while; what is left belongs to batches whose acknowledgements may
 * not have reached their devices (the node died). A resend (DUP set) whose key is here was stored already: it
 * is acknowledged without storing it again. Rows older than the look-up window are pruned.
 */
export const reportReceipts = pgTable('report_receipts', {
  batchId: text('batch_id').primaryKey(),
  createTime: ms('create_time').notNull(),
  keys: bigint('keys', { mode: 'bigint' }).array().notNull(),
});

/**
 * The receipts used up by a resend they matched (device-protocol.md §3.3): one row per key, so a receipt matches
 * one resend and a storm of resends after a node's death locks only their own keys. Pruned with the receipts.
 */
export const reportReceiptTakes = pgTable('report_receipt_takes', {
  key: bigint('key', { mode: 'bigint' }).primaryKey(),
  createTime: ms('create_time').notNull(),
});
