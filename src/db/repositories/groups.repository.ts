import { and, asc, eq, getTableColumns, sql } from 'drizzle-orm';
import { rowsOf, type Db, type Tx } from '../client.ts';
import { boundToCustomer } from '../scope.ts';
import { deviceGroupMembers, deviceGroups } from '../schema/index.ts';

export type GroupRow = typeof deviceGroups.$inferSelect;
export type NewGroup = typeof deviceGroups.$inferInsert;
export type GroupWithCount = GroupRow & { deviceCount: number };

/**
 * Walks never go further than this many levels, so a corrupt parent chain (a cycle written by hand)
 * cannot make a recursive query run forever.
 */
const WALK_LIMIT = 1000;

export function createGroupsRepository(db: Db) {
  return {
    /** Every group of the project in creation order (ids are time-ordered): the tree is built from this. */
    async listAll(projectId: string): Promise<GroupRow[]> {
      return db.select().from(deviceGroups).where(eq(deviceGroups.projectId, projectId)).orderBy(asc(deviceGroups.id));
    },

    async get(projectId: string, id: string, tx: Tx = db): Promise<GroupRow | undefined> {
      const [row] = await tx
        .select()
        .from(deviceGroups)
        .where(and(eq(deviceGroups.id, id), eq(deviceGroups.projectId, projectId)))
        .limit(1);
      return row;
    },

    /** The group with its number of devices; for a customer, only the devices bound to them count. */
    async getWithCount(projectId: string, id: string, customerId?: string): Promise<GroupWithCount | undefined> {
      const bound = customerId ? sql` and ${boundToCustomer(sql`m.device_id`, customerId)}` : sql``;
      const [row] = await db
        .select({
          ...getTableColumns(deviceGroups),
          deviceCount: sql<number>`(select count(*) from ${deviceGroupMembers} m where m.group_id = ${deviceGroups.id}${bound})::int`,
        })
        .from(deviceGroups)
        .where(and(eq(deviceGroups.id, id), eq(deviceGroups.projectId, projectId)))
        .limit(1);
      return row;
    },

    /**
     * The chain from `id` up to its root, `id` first. Serves both the depth bound and the
     * "not under itself" check of a move.
     */
    async ancestry(projectId: string, id: string, tx: Tx = db): Promise<string[]> {
      const rows = await tx.execute(sql`
        with recursive up(id, parent_id, n) as (
          select id, parent_id, 1 from ${deviceGroups} where id = ${id} and project_id = ${projectId}
          union all
          select g.id, g.parent_id, up.n + 1 from ${deviceGroups} g join up on g.id = up.parent_id
          where g.project_id = ${projectId} and up.n < ${WALK_LIMIT}
        ) select id from up order by n`);
      return rowsOf<{ id: string }>(rows).map((r) => r.id);
    },

    /** Levels of the subtree rooted at `id` (1 = a leaf). */
    async height(projectId: string, id: string, tx: Tx = db): Promise<number> {
      const rows = await tx.execute(sql`
        with recursive down(id, n) as (
          select id, 1 from ${deviceGroups} where id = ${id} and project_id = ${projectId}
          union all
          select g.id, down.n + 1 from ${deviceGroups} g join down on g.parent_id = down.id
          where g.project_id = ${projectId} and down.n < ${WALK_LIMIT}
        ) select coalesce(max(n), 0)::int as h from down`);
      return Number(rowsOf<{ h: number }>(rows)[0]?.h ?? 0);
    },

    /** Direct members and direct children: what keeps a group from being deleted. */
    async usage(projectId: string, id: string, tx: Tx = db): Promise<{ devices: number; children: number }> {
      const [row] = await tx
        .select({
          devices: sql<number>`(select count(*) from ${deviceGroupMembers} m where m.group_id = ${id} and m.project_id = ${projectId})::int`,
          children: sql<number>`(select count(*) from ${deviceGroups} c where c.parent_id = ${id} and c.project_id = ${projectId})::int`,
        })
        .from(sql`(select 1) as one`);
      return row ?? { devices: 0, children: 0 };
    },

    async insert(row: NewGroup, tx: Tx = db): Promise<void> {
      await tx.insert(deviceGroups).values(row);
    },

    async update(projectId: string, id: string, patch: Partial<NewGroup>, tx: Tx = db): Promise<boolean> {
      const rows = await tx
        .update(deviceGroups)
        .set(patch)
        .where(and(eq(deviceGroups.id, id), eq(deviceGroups.projectId, projectId)))
        .returning({ id: deviceGroups.id });
      return rows.length > 0;
    },

    async delete(projectId: string, id: string, tx: Tx = db): Promise<boolean> {
      const rows = await tx
        .delete(deviceGroups)
        .where(and(eq(deviceGroups.id, id), eq(deviceGroups.projectId, projectId)))
        .returning({ id: deviceGroups.id });
      return rows.length > 0;
    },

    /**
     * Runs `fn` in a transaction holding the project's group-structure lock, so two concurrent moves
     * cannot build a cycle or exceed the depth bound between their checks and their writes.
     */
    async withTreeLock<T>(projectId: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
      return db.transaction(async (tx) => {
        await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${`device_groups:${projectId}`}, 0))`);
        return fn(tx);
      });
    },
  };
}
export type GroupsRepository = ReturnType<typeof createGroupsRepository>;
