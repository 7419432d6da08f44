import { count, desc, eq, sql } from 'drizzle-orm';
import type { Db, Tx } from '../client.ts';
import { admins, apiApps, devices, projects } from '../schema/index.ts';

export type ProjectRow = typeof projects.$inferSelect;

/** Devices whose history one statement of a project's deletion removes. */
const HISTORY_DELETE_DEVICES = 500;
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
    /**
     * Deletes a project and all of its data. Every table but the history references the project (or its
     * devices) with ON DELETE CASCADE. The history has no foreign key (it would cost every insert a look-up,
     * history.repository.ts): it is deleted first, device by device, each statement on its own.
     * - By device, not by project: the series index leads with the device, so no partition is read whole; and
     *   TimescaleDB compresses in batches segmented by device and identifier, so a filter on the device lets
     *   versions before 2.21 (no whole-batch delete) decompress only the project's own batches, within their
     *   limit of decompressed rows per statement (the 2.23 of the tests deletes whole batches either way).
     * - Before the project and outside its transaction: the project's delete locks its devices' rows, and a
     *   long history delete would hold them (and every ingest batch waiting on one) for its whole length.
     * Best effort as for a deleted device: a report accepted in the moment of the delete may still be written
     * after it.
     */
    async delete(id: string): Promise<boolean> {
      const ids = (await db.select({ id: devices.id }).from(devices).where(eq(devices.projectId, id))).map((r) => r.id);
      for (let i = 0; i < ids.length; i += HISTORY_DELETE_DEVICES) {
        const list = sql.join(
          ids.slice(i, i + HISTORY_DELETE_DEVICES).map((d) => sql`${d}`),
          sql`, `,
        );
        await db.execute(sql`delete from attribute_history where device_id in (${list}) and project_id = ${id}`);
      }
      const rows = await db.delete(projects).where(eq(projects.id, id)).returning({ id: projects.id });
      return rows.length > 0;
    },
  };
}
export type ProjectsRepository = ReturnType<typeof createProjectsRepository>;
