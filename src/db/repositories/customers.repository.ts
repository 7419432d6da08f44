import { and, desc, eq, inArray, sql } from 'drizzle-orm';
import type { Db } from '../client.ts';
import { translating } from '../errors.ts';
import { customerDevices, customers, devices } from '../schema/index.ts';

export type NewCustomer = typeof customers.$inferInsert;

/** Which of `ids` are devices of the project (one indexed statement; also the live events' look-up). */
export async function selectExistingDeviceIds(db: Db, projectId: string, ids: string[]): Promise<string[]> {
  if (!ids.length) return [];
  const rows = await db
    .select({ id: devices.id })
    .from(devices)
    .where(and(eq(devices.projectId, projectId), inArray(devices.id, ids)));
  return rows.map((r) => r.id);
}

/** The customer columns that may leave the server: never the password hash. */
const publicColumns = {
  id: customers.id,
  account: customers.account,
  name: customers.name,
  descr: customers.descr,
  email: customers.email,
  mobile: customers.mobile,
  tags: customers.tags,
  locale: customers.locale,
  createTime: customers.createTime,
  // Counted in the same statement over the (customer_id, device_id) primary key: no query per customer.
  deviceCount: sql<number>`(select count(*) from ${customerDevices} cd where cd.customer_id = ${customers.id})::int`,
};
export interface CustomerRow {
  id: string;
  account: string;
  name: string;
  descr: string;
  email: string;
  mobile: string;
  tags: Record<string, string>;
  locale: string;
  createTime: number;
  deviceCount: number;
}

export function createCustomersRepository(db: Db) {
  const byId = (projectId: string, id: string) => and(eq(customers.id, id), eq(customers.projectId, projectId));

  return {
    async list(projectId: string, limit: number, offset: number): Promise<{ rows: CustomerRow[]; total: number }> {
      const [rows, counted] = await Promise.all([
        db
          .select(publicColumns)
          .from(customers)
          .where(eq(customers.projectId, projectId))
          .orderBy(desc(customers.id))
          .limit(limit)
          .offset(offset),
        db
          .select({ total: sql<number>`count(*)::int` })
          .from(customers)
          .where(eq(customers.projectId, projectId)),
      ]);
      return { rows, total: counted[0]?.total ?? 0 };
    },

    async get(projectId: string, id: string): Promise<CustomerRow | undefined> {
      const [row] = await db.select(publicColumns).from(customers).where(byId(projectId, id)).limit(1);
      return row;
    },

    async exists(projectId: string, id: string): Promise<boolean> {
      const rows = await db.select({ id: customers.id }).from(customers).where(byId(projectId, id)).limit(1);
      return rows.length > 0;
    },

    /** A taken account raises Duplicate('account'). */
    async insert(row: NewCustomer): Promise<void> {
      await translating({ unique: { account: 'account' } }, () => db.insert(customers).values(row));
    },

    async update(projectId: string, id: string, patch: Partial<NewCustomer>): Promise<boolean> {
      const rows = await db.update(customers).set(patch).where(byId(projectId, id)).returning({ id: customers.id });
      return rows.length > 0;
    },

    /** Merges tags in one statement; refuses when the result would exceed `maxTags`. */
    async mergeTags(
      projectId: string,
      id: string,
      tags: Record<string, string>,
      maxTags: number,
      now: number,
    ): Promise<'ok' | 'missing' | 'too-many'> {
      const merged = sql`${customers.tags} || ${JSON.stringify(tags)}::jsonb`;
      const rows = await db
        .update(customers)
        .set({ tags: sql`${merged}`, updateTime: now })
        .where(and(byId(projectId, id), sql`(select count(*) from jsonb_object_keys(${merged})) <= ${maxTags}`))
        .returning({ id: customers.id });
      if (rows.length) return 'ok';
      return (await this.exists(projectId, id)) ? 'too-many' : 'missing';
    },

    async removeTags(projectId: string, id: string, keys: string[], now: number): Promise<boolean> {
      const rows = await db
        .update(customers)
        .set({
          tags: sql`${customers.tags} - ${sql`array[${sql.join(
            keys.map((k) => sql`${k}`),
            sql`, `,
          )}]::text[]`}`,
          updateTime: now,
        })
        .where(byId(projectId, id))
        .returning({ id: customers.id });
      return rows.length > 0;
    },

    async delete(projectId: string, id: string): Promise<boolean> {
      const rows = await db.delete(customers).where(byId(projectId, id)).returning({ id: customers.id });
      return rows.length > 0;
    },

    existingDeviceIds: (projectId: string, ids: string[]) => selectExistingDeviceIds(db, projectId, ids),

    /**
     * Binding twice is a no-op (the primary key is (customer, device)). A customer or device deleted
     * meanwhile raises MissingReference('customer') or MissingReference('device').
     */
    async bindDevices(projectId: string, customerId: string, deviceIds: string[], now: number): Promise<void> {
      if (!deviceIds.length) return;
      await translating({ foreignKey: { customer_id: 'customer', device_id: 'device', project_id: 'project' } }, () =>
        db
          .insert(customerDevices)
          .values(deviceIds.map((deviceId) => ({ customerId, deviceId, projectId, createTime: now })))
          .onConflictDoNothing(),
      );
    },

    async unbindDevices(projectId: string, customerId: string, deviceIds: string[]): Promise<void> {
      if (!deviceIds.length) return;
      await db
        .delete(customerDevices)
        .where(
          and(
            eq(customerDevices.projectId, projectId),
            eq(customerDevices.customerId, customerId),
            inArray(customerDevices.deviceId, deviceIds),
          ),
        );
    },
  };
}
export type CustomersRepository = ReturnType<typeof createCustomersRepository>;
