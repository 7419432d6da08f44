import { eq, isNotNull } from 'drizzle-orm';
import type { Db } from '../client.ts';
import { projects } from '../schema/index.ts';

/** A project's operating limits as stored; null = the server default. */
export interface ProjectSettingsRow {
  deviceRateLimit: number | null;
  historyRetentionDays: number | null;
  customerPasswordMinLength: number | null;
}

const columns = {
  deviceRateLimit: projects.deviceRateLimit,
  historyRetentionDays: projects.historyRetentionDays,
  customerPasswordMinLength: projects.customerPasswordMinLength,
};

/** The per-project settings columns of `projects` (device rate, history retention, customer password length). */
export function createProjectSettingsRepository(db: Db) {
  return {
    async get(projectId: string): Promise<ProjectSettingsRow | undefined> {
      const [row] = await db.select(columns).from(projects).where(eq(projects.id, projectId));
      return row;
    },

    /** The settings after the change; undefined when the project does not exist. */
    async update(
      projectId: string,
      set: Partial<ProjectSettingsRow> & { updateTime: number },
    ): Promise<ProjectSettingsRow | undefined> {
      const [row] = await db.update(projects).set(set).where(eq(projects.id, projectId)).returning(columns);
      return row;
    },

    /** Projects with a retention of their own (not the server's). */
    async retentionOverrides(): Promise<Array<{ projectId: string; days: number }>> {
      const rows = await db
        .select({ projectId: projects.id, days: projects.historyRetentionDays })
        .from(projects)
        .where(isNotNull(projects.historyRetentionDays));
      return rows.map((r) => ({ projectId: r.projectId, days: r.days! }));
    },
  };
}
export type ProjectSettingsRepository = ReturnType<typeof createProjectSettingsRepository>;
