import { sql } from 'drizzle-orm';
import { bigint, index, integer, jsonb, pgTable, text, uniqueIndex } from 'drizzle-orm/pg-core';
import { created, ms, updated } from './columns.ts';
import { devices } from './devices.ts';
import { projectRef } from './projects.ts';

/** The command log (device-protocol.md §10). */

export type CommandState = 'queued' | 'sent' | 'replied' | 'timeout' | 'expired' | 'failed';

/** Every command sent to a device, stored before it is sent (device-protocol.md §10). */
export const commands = pgTable(
  'commands',
  {
    id: text('id').primaryKey(),
    projectId: projectRef(),
    deviceId: text('device_id')
      .notNull()
      .references(() => devices.id, { onDelete: 'cascade' }),
    /** The `<id>` of `command/send/<id>` and of the body: an integer, unique among the device's open commands. */
    seq: bigint('seq', { mode: 'number' }).notNull(),
    method: text('method').notNull(),
    params: jsonb('params').$type<unknown>().notNull().default({}),
    state: text('state').$type<CommandState>().notNull(),
    /** A queued command is delivered on the device's next connect until this time; then it expires. */
    expireTime: ms('expire_time'),
    /** How long a sent command waits for its reply before it times out. */
    replyTimeoutMs: integer('reply_timeout_ms').notNull(),
    reply: jsonb('reply').$type<unknown>(),
    error: text('error'),
    createTime: created(),
    sentTime: ms('sent_time'),
    replyTime: ms('reply_time'),
    updateTime: updated(),
  },
  (t) => [
    index('commands_project_device_id_idx').on(t.projectId, t.deviceId, t.id),
    index('commands_open_idx')
      .on(t.deviceId, t.state)
      .where(sql`state in ('queued', 'sent')`),
    uniqueIndex('commands_open_seq_uq')
      .on(t.deviceId, t.seq)
      .where(sql`state in ('queued', 'sent')`),
  ],
);
