import { count, desc, eq, sql } from 'drizzle-orm';
import type { Db, Tx } from '../client.ts';
import { admins, apiApps, devices, projects } from '../schema/index.ts';

export type ProjectRow = typeof projects.$inferSelect;
export type NewProject = typeof projects.$inferInsert;

export function createProjectsRepository(db: Db) {
  return {
    async createWithOwner(
      project: NewProject,
      app: typeof apiApps.$inferInsert,
      admin: typeof admins.$inferInsert,
    ): Promise<void> {
      await db.transaction(async (tx) => {
        await tx.insert(projects).values(project);
        await tx.insert(apiApps).values(app);
        await tx.insert(admins).values(admin);
      });
    },
    async byId(id: string, tx: Tx = db): Promise<ProjectRow | undefined> {
      const [row] = await tx.select().from(projects).where(eq(projects.id, id)).limit(1);
      return row;
    },
    async byProjectKey(projectKey: string): Promise<ProjectRow | undefined> {
      const [row] = await db.select().from(projects).where(eq(projects.projectKey, projectKey)).limit(1);
      return row;
    },
    async list() {
      const deviceCount = db
        .select({ projectId: devices.projectId, n: count().as('n') })
        .from(devices)
        .groupBy(devices.projectId)
        .as('dc');
      return db
        .select({
          id: projects.id,
          name: projects.name,
          descr: projects.descr,
          projectKey: projects.projectKey,
          createTime: projects.createTime,
          deviceCount: sql<number>`coalesce(${deviceCount.n}, 0)::int`,
        })
        .from(projects)
        .leftJoin(deviceCount, eq(deviceCount.projectId, projects.id))
        .orderBy(desc(projects.id));
    },
    async update(
      id: string,
      patch: Partial<
        Pick<NewProject, 'name' | 'descr' | 'tags' | 'deviceQuota' | 'viewKey' | 'viewSecretHash' | 'updateTime'>
      >,
    ) {
      const rows = await db.update(projects).set(patch).where(eq(projects.id, id)).returning({ id: projects.id });
      return rows.length > 0;
    },
    /** The ids of the project's devices. */
    async deviceIds(id: string): Promise<string[]> {
      return (await db.select({ id: devices.id }).from(devices).where(eq(devices.projectId, id))).map((r) => r.id);
    },
    /**
     * Every table but the history references the project (or its devices) with ON DELETE CASCADE: this removes
     * all of its data but its history (projects.service.ts removes that first).
     */
    async delete(id: string): Promise<boolean> {
      const rows = await db.delete(projects).where(eq(projects.id, id)).returning({ id: projects.id });
      return rows.length > 0;
    },
  };
}
export type ProjectsRepository = ReturnType<typeof createProjectsRepository>;
