import { and, eq } from 'drizzle-orm';
import type { Db } from '../client.ts';
import { admins, apiApps, customers } from '../schema.ts';

/** The look-ups that log principals in and keep their tokens alive. */
export function createCredentialsRepository(db: Db) {
  return {
    async appById(appId: string) {
      const [row] = await db.select().from(apiApps).where(eq(apiApps.id, appId)).limit(1);
      return row;
    },
    async adminByAccount(projectId: string, account: string) {
      const [row] = await db
        .select()
        .from(admins)
        .where(and(eq(admins.projectId, projectId), eq(admins.account, account)))
        .limit(1);
      return row;
    },
    async customerByAccount(projectId: string, account: string) {
      const [row] = await db
        .select()
        .from(customers)
        .where(and(eq(customers.projectId, projectId), eq(customers.account, account)))
        .limit(1);
      return row;
    },
    async exists(kind: 'app' | 'admin' | 'customer', projectId: string, id: string): Promise<boolean> {
      const table = kind === 'app' ? apiApps : kind === 'admin' ? admins : customers;
      const rows = await db
        .select({ id: table.id })
        .from(table)
        .where(and(eq(table.id, id), eq(table.projectId, projectId)))
        .limit(1);
      return rows.length > 0;
    },
  };
}
export type CredentialsRepository = ReturnType<typeof createCredentialsRepository>;
