import { and, eq } from 'drizzle-orm';
import type { Db } from '../client.ts';
import { admins, apiApps, customers } from '../schema/index.ts';

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
    /** When the principal's credentials last changed, or undefined when it no longer exists. */
    async credentialsTime(
      kind: 'app' | 'admin' | 'customer',
      projectId: string,
      id: string,
    ): Promise<number | undefined> {
      const table = kind === 'app' ? apiApps : kind === 'admin' ? admins : customers;
      const [row] = await db
        .select({ time: table.credentialsTime })
        .from(table)
        .where(and(eq(table.id, id), eq(table.projectId, projectId)))
        .limit(1);
      return row?.time;
    },
  };
}
export type CredentialsRepository = ReturnType<typeof createCredentialsRepository>;
