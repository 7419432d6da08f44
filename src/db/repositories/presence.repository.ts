import { sql } from 'drizzle-orm';
import type { Db } from '../client.ts';
import { devices } from '../schema.ts';

export interface PresenceRow {
  deviceId: string;
  /** Undefined = unchanged. */
  online?: boolean;
  /** Latest time of each kind of message to merge into `active_ts`. */
  activeTs: Record<string, number>;
}

export function createPresenceRepository(db: Db) {
  return {
    /** Applies many devices' changes in one statement (architecture.md §9: no write per message). */
    async apply(rows: PresenceRow[]): Promise<void> {
      if (!rows.length) return;
      const values = sql.join(
        rows.map((r) => sql`(${r.deviceId}, ${r.online === undefined ? null : r.online}::boolean, ${JSON.stringify(r.activeTs)}::jsonb)`),
        sql`, `,
      );
      await db.execute(sql`
        update ${devices} d set
          online = coalesce(v.online, d.online),
          active = d.active or v.ts <> '{}'::jsonb,
          active_ts = d.active_ts || v.ts
        from (values ${values}) as v(id, online, ts)
        where d.id = v.id`);
    },

    /** No session survives a restart of a single node: nothing is online when it starts. */
    async resetOnline(): Promise<void> {
      await db.execute(sql`update ${devices} set online = false where online`);
    },
  };
}
export type PresenceRepository = ReturnType<typeof createPresenceRepository>;
