import { and, eq } from 'drizzle-orm';
import type { Db } from '../client.ts';
import { translating } from '../errors.ts';
import { projects } from '../schema/index.ts';

/** The project's application-subscription identity (device-protocol.md §9): key in clear, secret hashed. */
export function createViewKeysRepository(db: Db) {
  return {
    async byProject(projectId: string): Promise<{ viewKey: string | null; viewSecretHash: string | null } | undefined> {
      const [row] = await db
        .select({ viewKey: projects.viewKey, viewSecretHash: projects.viewSecretHash })
        .from(projects)
        .where(eq(projects.id, projectId))
        .limit(1);
      return row;
    },

    async byViewKey(viewKey: string): Promise<{ projectId: string; viewSecretHash: string | null } | undefined> {
      const [row] = await db
        .select({ projectId: projects.id, viewSecretHash: projects.viewSecretHash })
        .from(projects)
        .where(eq(projects.viewKey, viewKey))
        .limit(1);
      return row;
    },

    /** The same secret stored in another form (a hash migrated on use); nothing changes when it was replaced meanwhile. */
    async replaceSecretHash(projectId: string, from: string, to: string): Promise<void> {
      await db
        .update(projects)
        .set({ viewSecretHash: to })
        .where(and(eq(projects.id, projectId), eq(projects.viewSecretHash, from)));
    },

    /** Sets the secret, and the key when given; false when the project does not exist. A taken key raises Duplicate('view_key'). */
    async set(
      projectId: string,
      values: { viewKey?: string; viewSecretHash: string; updateTime: number },
    ): Promise<boolean> {
      const rows = await translating({ unique: { view_key: 'view_key' } }, () =>
        db.update(projects).set(values).where(eq(projects.id, projectId)).returning({ id: projects.id }),
      );
      return rows.length > 0;
    },
  };
}
export type ViewKeysRepository = ReturnType<typeof createViewKeysRepository>;
