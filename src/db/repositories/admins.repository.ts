import { and, asc, eq, ne } from 'drizzle-orm';
import type { Db, Tx } from '../client.ts';
import { translating } from '../errors.ts';
import { admins, projects } from '../schema/index.ts';

export type AdminRow = typeof admins.$inferSelect;
export type NewAdmin = typeof admins.$inferInsert;

/** Administrator accounts of a project (http-api.md §3 "Administrators"); every query carries the project id. */
export function createAdminsRepository(db: Db) {
  return {
    list(projectId: string): Promise<AdminRow[]> {
      return db.select().from(admins).where(eq(admins.projectId, projectId)).orderBy(asc(admins.id));
    },

    async get(projectId: string, id: string, tx: Tx = db): Promise<AdminRow | undefined> {
      const [row] = await tx
        .select()
        .from(admins)
        .where(and(eq(admins.id, id), eq(admins.projectId, projectId)))
        .limit(1);
      return row;
    },

    /** A taken account raises Duplicate('account'). */
    async insert(row: NewAdmin): Promise<void> {
      await translating({ unique: { account: 'account' } }, () => db.insert(admins).values(row));
    },

    async update(
      projectId: string,
      id: string,
      patch: Partial<Pick<NewAdmin, 'name' | 'email' | 'tags' | 'passwordHash' | 'credentialsTime' | 'updateTime'>>,
    ): Promise<boolean> {
      const rows = await db
        .update(admins)
        .set(patch)
        .where(and(eq(admins.id, id), eq(admins.projectId, projectId)))
        .returning({ id: admins.id });
      return rows.length > 0;
    },

    /**
     * Deletes an administrator unless it is the project's last one; the project row is locked so
     * concurrent deletions are serialized and the project always keeps one administrator.
     */
    async deleteUnlessLast(projectId: string, id: string): Promise<'deleted' | 'missing' | 'last'> {
      return db.transaction(async (tx) => {
        await tx.select({ id: projects.id }).from(projects).where(eq(projects.id, projectId)).for('update');
        const [row] = await tx
          .select({ id: admins.id })
          .from(admins)
          .where(and(eq(admins.id, id), eq(admins.projectId, projectId)))
          .limit(1);
        if (!row) return 'missing';
        const [other] = await tx
          .select({ id: admins.id })
          .from(admins)
          .where(and(eq(admins.projectId, projectId), ne(admins.id, id)))
          .limit(1);
        if (!other) return 'last';
        await tx.delete(admins).where(and(eq(admins.id, id), eq(admins.projectId, projectId)));
        return 'deleted';
      });
    },
  };
}
export type AdminsRepository = ReturnType<typeof createAdminsRepository>;
