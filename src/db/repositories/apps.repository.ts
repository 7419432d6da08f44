import { and, asc, eq, ne } from 'drizzle-orm';
import type { Db, Tx } from '../client.ts';
import { apiApps, projects } from '../schema/index.ts';

export type AppRow = typeof apiApps.$inferSelect;
export type NewApp = typeof apiApps.$inferInsert;

/** API apps of a project (http-api.md §2); every query carries the project id. */
export function createAppsRepository(db: Db) {
  return {
    /** Oldest first: the project's first app (the one created with it) leads the list. */
    list(projectId: string): Promise<AppRow[]> {
      return db.select().from(apiApps).where(eq(apiApps.projectId, projectId)).orderBy(asc(apiApps.id));
    },

    async get(projectId: string, id: string, tx: Tx = db): Promise<AppRow | undefined> {
      const [row] = await tx
        .select()
        .from(apiApps)
        .where(and(eq(apiApps.id, id), eq(apiApps.projectId, projectId)))
        .limit(1);
      return row;
    },

    async insert(row: NewApp): Promise<void> {
      await db.insert(apiApps).values(row);
    },

    async setSecret(projectId: string, id: string, secretHash: string, now: number): Promise<boolean> {
      const rows = await db
        .update(apiApps)
        .set({ secretHash, credentialsTime: now })
        .where(and(eq(apiApps.id, id), eq(apiApps.projectId, projectId)))
        .returning({ id: apiApps.id });
      return rows.length > 0;
    },

    /**
     * The same secret stored in another form (a hash migrated on use): the credentials time stays, so
     * tokens stay valid; nothing changes when the secret was replaced meanwhile.
     */
    async replaceSecretHash(projectId: string, id: string, from: string, to: string): Promise<void> {
      await db
        .update(apiApps)
        .set({ secretHash: to })
        .where(and(eq(apiApps.id, id), eq(apiApps.projectId, projectId), eq(apiApps.secretHash, from)));
    },

    /**
     * Deletes an app unless it is the project's last one. The project row is locked first so two
     * concurrent deletions cannot both see "another app remains" and leave the project with none.
     */
    async deleteUnlessLast(projectId: string, id: string): Promise<'deleted' | 'missing' | 'last'> {
      return db.transaction(async (tx) => {
        await tx.select({ id: projects.id }).from(projects).where(eq(projects.id, projectId)).for('update');
        const [row] = await tx
          .select({ id: apiApps.id })
          .from(apiApps)
          .where(and(eq(apiApps.id, id), eq(apiApps.projectId, projectId)))
          .limit(1);
        if (!row) return 'missing';
        const [other] = await tx
          .select({ id: apiApps.id })
          .from(apiApps)
          .where(and(eq(apiApps.projectId, projectId), ne(apiApps.id, id)))
          .limit(1);
        if (!other) return 'last';
        await tx.delete(apiApps).where(and(eq(apiApps.id, id), eq(apiApps.projectId, projectId)));
        return 'deleted';
      });
    },
  };
}
export type AppsRepository = ReturnType<typeof createAppsRepository>;
