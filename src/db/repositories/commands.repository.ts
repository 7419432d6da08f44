import { and, desc, eq, inArray, isNull, sql, type Placeholder } from 'drizzle-orm';
import type { Db } from '../client.ts';
import { translating } from '../errors.ts';
import { commands } from '../schema/index.ts';

export type CommandRow = typeof commands.$inferSelect;
export type NewCommand = typeof commands.$inferInsert;

/** The stored reply of a command: what the device answered on `command/reply/<id>` (device-protocol.md §3). */
export interface CommandReply {
  method: string;
  params: unknown;
}

/**
 * The command log (device-protocol.md §10). Every state change is one conditional UPDATE, so two
 * paths racing for the same command (a send and a delivery on connect, a reply and a timeout)
 * cannot both win.
 */
export function createCommandsRepository(db: Db) {
  const ofDevice = (projectId: string | Placeholder, deviceId: string | Placeholder) =>
    and(eq(commands.projectId, projectId), eq(commands.deviceId, deviceId));

  /**
   * The statements every command runs (its seq, its claim, its reply), built once and run as named
   * prepared statements: no SQL built per call, and one round trip each on PostgreSQL instead of two.
   */
  const p = {
    projectId: sql.placeholder('projectId'),
    deviceId: sql.placeholder('deviceId'),
    id: sql.placeholder('id'),
    now: sql.placeholder('now'),
  };
  const prepared = {
    latestSeq: db
      .select({ seq: commands.seq })
      .from(commands)
      .where(ofDevice(p.projectId, p.deviceId))
      .orderBy(desc(commands.id))
      .limit(1)
      .prepare('commands_latest_seq'),
    openSeqs: db
      .select({ seq: commands.seq })
      .from(commands)
      .where(and(ofDevice(p.projectId, p.deviceId), inArray(commands.state, ['queued', 'sent'])))
      .prepare('commands_open_seqs'),
    get: db
      .select()
      .from(commands)
      .where(and(eq(commands.id, p.id), eq(commands.projectId, p.projectId)))
      .limit(1)
      .prepare('commands_get'),
    markReplied: db
      .update(commands)
      .set({
        state: 'replied',
        reply: sql`jsonb_build_object('method', coalesce(${sql.placeholder('method')}::text, ${commands.method}), 'params', ${sql.placeholder('params')}::jsonb)`,
        replyTime: sql`${p.now}`,
        updateTime: sql`${p.now}`,
      })
      .where(
        and(ofDevice(p.projectId, p.deviceId), eq(commands.seq, sql.placeholder('seq')), eq(commands.state, 'sent')),
      )
      .returning()
      .prepare('commands_mark_replied'),
    claim: db
      .update(commands)
      .set({ state: 'sent', sentTime: sql`${p.now}`, updateTime: sql`${p.now}` })
      .where(and(eq(commands.id, p.id), eq(commands.projectId, p.projectId), eq(commands.state, 'queued')))
      .returning()
      .prepare('commands_claim'),
  };

  return {
    /**
     * A command id still open on the device raises Duplicate('command_seq'); an id drawn twice,
     * Duplicate('command_id'); a device deleted meanwhile, MissingReference('device').
     */
    async insert(row: NewCommand): Promise<CommandRow> {
      const [inserted] = await translating(
        {
          unique: { commands_open_seq: 'command_seq', commands_pkey: 'command_id' },
          foreignKey: { device_id: 'device' },
        },
        () => db.insert(commands).values(row).returning(),
      );
      return inserted!;
    },

    async get(projectId: string, id: string): Promise<CommandRow | undefined> {
      const [row] = await prepared.get.execute({ id, projectId });
      return row;
    },

    /** The seq of the device's newest command and the seqs still open, to pick the next free one. */
    async seqState(projectId: string, deviceId: string): Promise<{ latest: number | undefined; open: number[] }> {
      const [[latest], open] = await Promise.all([
        prepared.latestSeq.execute({ projectId, deviceId }),
        prepared.openSeqs.execute({ projectId, deviceId }),
      ]);
      return { latest: latest?.seq, open: open.map((r) => r.seq) };
    },

    /** queued → sent, just before the publish; undefined when another path took the command first. */
    async claim(projectId: string, id: string, now: number): Promise<CommandRow | undefined> {
      const [row] = await prepared.claim.execute({ id, projectId, now });
      return row;
    },

    /** queued|sent → failed with the reason. */
    async fail(projectId: string, id: string, error: string, now: number): Promise<CommandRow | undefined> {
      const [row] = await db
        .update(commands)
        .set({ state: 'failed', error, updateTime: now })
        .where(and(eq(commands.id, id), eq(commands.projectId, projectId), inArray(commands.state, ['queued', 'sent'])))
        .returning();
      return row;
    },

    /** sent → queued again: the publish did not happen and the command still has time to live. */
    /** Answers how many went back (a command replied to or timed out meanwhile stays as it is). */
    async requeue(projectId: string, ids: string[], now: number): Promise<number> {
      if (!ids.length) return 0;
      const rows = await db
        .update(commands)
        .set({ state: 'queued', sentTime: null, updateTime: now })
        .where(and(eq(commands.projectId, projectId), inArray(commands.id, ids), eq(commands.state, 'sent')))
        .returning({ id: commands.id });
      return rows.length;
    },

    /**
     * On connect: the device's oldest `limit` queued commands that are still alive become sent, in one
     * statement (a page: a device's queue is delivered page by page, so it is never loaded whole).
     * Commands queued without a time to live are in the middle of their own send() and are left alone.
     */
    async claimQueued(projectId: string, deviceId: string, now: number, limit: number): Promise<CommandRow[]> {
      const alive = and(
        ofDevice(projectId, deviceId),
        eq(commands.state, 'queued'),
        sql`${commands.expireTime} > ${now}`,
      );
      const page = db
        .select({ id: commands.id })
        .from(commands)
        .where(alive)
        .orderBy(commands.createTime, commands.seq, commands.id)
        .limit(limit);
      const rows = await db
        .update(commands)
        .set({ state: 'sent', sentTime: now, updateTime: now })
        .where(and(alive, inArray(commands.id, page)))
        .returning();
      return rows.sort((a, b) => a.createTime - b.createTime || a.seq - b.seq || (a.id < b.id ? -1 : 1));
    },

    /** Commands of the device waiting to be delivered (with a time to live). */
    async countQueued(projectId: string, deviceId: string): Promise<number> {
      const [row] = await db
        .select({ n: sql<number>`count(*)::int` })
        .from(commands)
        .where(and(ofDevice(projectId, deviceId), eq(commands.state, 'queued')));
      return row?.n ?? 0;
    },

    async expireQueuedOf(projectId: string, deviceId: string, now: number): Promise<number> {
      const rows = await db
        .update(commands)
        .set({ state: 'expired', error: 'expired before the device connected', updateTime: now })
        .where(and(ofDevice(projectId, deviceId), eq(commands.state, 'queued'), sql`${commands.expireTime} <= ${now}`))
        .returning({ id: commands.id });
      return rows.length;
    },

    /** Matches a reply to the device's sent command with that seq (unique among open commands). */
    async markReplied(
      projectId: string,
      deviceId: string,
      seq: number,
      method: string | undefined,
      params: unknown,
      now: number,
    ): Promise<CommandRow | undefined> {
      const [row] = await prepared.markReplied.execute({
        projectId,
        deviceId,
        seq,
        method: method ?? null,
        params: JSON.stringify(params),
        now,
      });
      return row;
    },

    /** One sent command → timeout (a synchronous caller waited its whole reply timeout). */
    async timeoutOne(projectId: string, id: string, now: number): Promise<CommandRow | undefined> {
      const [row] = await db
        .update(commands)
        .set({ state: 'timeout', error: 'no reply within the timeout', updateTime: now })
        .where(and(eq(commands.id, id), eq(commands.projectId, projectId), eq(commands.state, 'sent')))
        .returning();
      return row;
    },

    /** Every sent command past its reply timeout → timeout, in one statement; returns their ids. */
    async timeoutDue(now: number): Promise<string[]> {
      const rows = await db
        .update(commands)
        .set({ state: 'timeout', error: 'no reply within the timeout', updateTime: now })
        .where(and(eq(commands.state, 'sent'), sql`${commands.sentTime} + ${commands.replyTimeoutMs} <= ${now}`))
        .returning({ id: commands.id });
      return rows.map((r) => r.id);
    },

    /** Every queued command past its time to live → expired, in one statement; returns their ids. */
    async expireDue(now: number): Promise<string[]> {
      const rows = await db
        .update(commands)
        .set({ state: 'expired', error: 'expired before the device connected', updateTime: now })
        .where(and(eq(commands.state, 'queued'), sql`${commands.expireTime} <= ${now}`))
        .returning({ id: commands.id });
      return rows.map((r) => r.id);
    },

    /**
     * Commands left queued without a time to live: their send() was cut short (the process stopped
     * between storing and publishing). They were never delivered; fail them so their seq is free.
     */
    async failInterrupted(createdBefore: number, now: number): Promise<number> {
      const rows = await db
        .update(commands)
        .set({ state: 'failed', error: 'interrupted before it was sent', updateTime: now })
        .where(
          and(
            eq(commands.state, 'queued'),
            isNull(commands.expireTime),
            sql`${commands.createTime} <= ${createdBefore}`,
          ),
        )
        .returning({ id: commands.id });
      return rows.length;
    },

    /** One page of a device's log, newest first (an index scan on project, device, id). */
    async page(projectId: string, deviceId: string, limit: number, offset: number): Promise<CommandRow[]> {
      return db
        .select()
        .from(commands)
        .where(ofDevice(projectId, deviceId))
        .orderBy(desc(commands.id))
        .limit(limit)
        .offset(offset);
    },

    async total(projectId: string, deviceId: string): Promise<number> {
      const [row] = await db
        .select({ n: sql<number>`count(*)::int` })
        .from(commands)
        .where(ofDevice(projectId, deviceId));
      return row?.n ?? 0;
    },
  };
}
export type CommandsRepository = ReturnType<typeof createCommandsRepository>;
