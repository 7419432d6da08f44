import { and, eq } from 'drizzle-orm';
import type { Db } from '../client.ts';
import { notifyJobs } from '../schema/index.ts';

export type NotifyJobRow = typeof notifyJobs.$inferSelect;
/** A job as it is made: nobody has claimed it yet. */
export type NewNotifyJob = Omit<NotifyJobRow, 'claimedBy' | 'claimUntil'>;

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

    /** A project's jobs (tests, support). */
    projectJobs(projectId: string): Promise<NotifyJobRow[]> {
      return db.select().from(notifyJobs).where(eq(notifyJobs.projectId, projectId)).orderBy(notifyJobs.id);
    },

    /** Every job of every project, oldest first (at start, to take them up again). */
    allJobs(): Promise<NotifyJobRow[]> {
      return db.select().from(notifyJobs).orderBy(notifyJobs.id);
    },
  };
}
export type NotifyJobsRepository = ReturnType<typeof createNotifyJobsRepository>;
