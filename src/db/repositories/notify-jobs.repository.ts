import { and, eq, gt, inArray, isNull, lt, or, sql } from 'drizzle-orm';
import type { Db } from '../client.ts';
import { notifyJobs } from '../schema/index.ts';

export type NotifyJobRow = typeof notifyJobs.$inferSelect;
/** A job as it is made: nobody has claimed it yet (or, given, the node that made it). */
export type NewNotifyJob = Omit<NotifyJobRow, 'claimedBy' | 'claimUntil'> &
  Partial<Pick<NotifyJobRow, 'claimedBy' | 'claimUntil'>>;

/** Claimable: nobody holds it, or its holder let the claim lapse (docs/cluster.md §3). */
const claimable = (now: number) =>
  or(isNull(notifyJobs.claimedBy), isNull(notifyJobs.claimUntil), lt(notifyJobs.claimUntil, now));

/** Webhook deliveries not yet done (src/domain/alarms/notifier.ts), each scoped by its project. */
export function createNotifyJobsRepository(db: Db) {
  return {
    async insertJobs(rows: NewNotifyJob[]) {
      if (rows.length) await db.insert(notifyJobs).values(rows);
    },

    /** The next attempt of a job and when it is due. */
    async rescheduleJob(projectId: string, id: string, attempt: number, dueTime: number) {
      await db
        .update(notifyJobs)
        .set({ attempt, dueTime })
        .where(and(eq(notifyJobs.projectId, projectId), eq(notifyJobs.id, id)));
    },

    async deleteJob(projectId: string, id: string) {
      await db.delete(notifyJobs).where(and(eq(notifyJobs.projectId, projectId), eq(notifyJobs.id, id)));
    },

    async deleteTargetJobs(projectId: string, targetId: string) {
      await db.delete(notifyJobs).where(and(eq(notifyJobs.projectId, projectId), eq(notifyJobs.targetId, targetId)));
    },

    /**
     * Claims one job for `node` until `until` when nobody holds it, its claim lapsed before `now`, or
     * `node` holds it already (renewed): the job runs on one node at a time. Returns the job when the
     * claim is this node's; undefined when another node holds it or it is gone.
     */
    async claimJob(projectId: string, id: string, node: string, until: number, now: number) {
      const [row] = await db
        .update(notifyJobs)
        .set({ claimedBy: node, claimUntil: until })
        .where(
          and(
            eq(notifyJobs.projectId, projectId),
            eq(notifyJobs.id, id),
            or(claimable(now), eq(notifyJobs.claimedBy, node)),
          ),
        )
        .returning();
      return row;
    },

    /**
     * Claims every job nobody holds or whose claim lapsed before `now` (and, with `own`, those `node`
     * held before a restart), oldest first, at most `limit`, with ids after `after` when given (the next
     * batch): a dead node's deliveries are taken over.
     */
    claimLapsed(
      node: string,
      until: number,
      now: number,
      { own = false, limit = 1_000, after }: { own?: boolean; limit?: number; after?: string } = {},
    ): Promise<NotifyJobRow[]> {
      const which = and(
        own ? or(claimable(now), eq(notifyJobs.claimedBy, node)) : claimable(now),
        after !== undefined ? gt(notifyJobs.id, after) : undefined,
      );
      return (
        db
          .update(notifyJobs)
          .set({ claimedBy: node, claimUntil: until })
          // The condition again outside the sub-select: of two nodes taking over at once, the second finds
          // the rows claimed when it gets their locks and leaves them.
          .where(
            and(
              inArray(
                notifyJobs.id,
                db.select({ id: notifyJobs.id }).from(notifyJobs).where(which).orderBy(notifyJobs.id).limit(limit),
              ),
              which,
            ),
          )
          .returning()
          .then((rows) => rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)))
      );
    },

    /** Extends `node`'s claims on these jobs to `until`; returns the ids still held (the others were taken). */
    async renewClaims(node: string, ids: string[], until: number): Promise<string[]> {
      if (!ids.length) return [];
      const rows = await db
        .update(notifyJobs)
        .set({ claimUntil: until })
        .where(and(eq(notifyJobs.claimedBy, node), inArray(notifyJobs.id, ids)))
        .returning({ id: notifyJobs.id });
      return rows.map((r) => r.id);
    },

    /** Gives up `node`'s claims on these jobs (stopping: another node takes them at once). */
    async releaseClaims(node: string, ids: string[]) {
      if (!ids.length) return;
      await db
        .update(notifyJobs)
        .set({ claimedBy: null, claimUntil: null })
        .where(and(eq(notifyJobs.claimedBy, node), inArray(notifyJobs.id, ids)));
    },

    /** A project's jobs (tests, support). */
    projectJobs(projectId: string): Promise<NotifyJobRow[]> {
      return db.select().from(notifyJobs).where(eq(notifyJobs.projectId, projectId)).orderBy(notifyJobs.id);
    },

    /** Every job of every project, oldest first (at start, to take them up again). */
    allJobs(): Promise<NotifyJobRow[]> {
      return db.select().from(notifyJobs).orderBy(notifyJobs.id);
    },

    /** How many jobs `node` holds (tests, support). */
    async claimedBy(node: string): Promise<number> {
      const [r] = await db
        .select({ n: sql<number>`count(*)::int` })
        .from(notifyJobs)
        .where(eq(notifyJobs.claimedBy, node));
      return Number(r?.n ?? 0);
    },
  };
}
export type NotifyJobsRepository = ReturnType<typeof createNotifyJobsRepository>;
