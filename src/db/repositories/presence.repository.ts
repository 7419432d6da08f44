import { sql } from 'drizzle-orm';
import type { Db } from '../client.ts';
import { devices } from '../schema/index.ts';

export interface PresenceRow {
  deviceId: string;
  /** Undefined = unchanged. */
  online?: boolean;
  /** Latest time of each kind of message to merge into `active_ts`. */
  activeTs: Record<string, number>;
}

const PRESENCE_CHUNK = 5_000;

export function createPresenceRepository(db: Db) {
  return {
    /** Applies many devices' changes in a few statements (architecture.md §9: no write per message). */
    async apply(all: PresenceRow[]): Promise<void> {
      // 3 parameters a row: chunks keep each statement far below PostgreSQL's 65,535 parameters.
      for (let i = 0; i < all.length; i += PRESENCE_CHUNK) await applyChunk(all.slice(i, i + PRESENCE_CHUNK));
    },

    /** No session survives a restart of a single node: nothing is online when it starts. */
    async resetOnline(): Promise<void> {
      await db.execute(sql`update ${devices} set online = false where online`);
    },
  };

  async function applyChunk(rows: PresenceRow[]): Promise<void> {
    const values = sql.join(
      rows.map(
        (r) =>
          sql`(${r.deviceId}, ${r.online === undefined ? null : r.online}::boolean, ${JSON.stringify(r.activeTs)}::jsonb)`,
      ),
      sql`, `,
    );
    await db.execute(sql`
      update ${devices} d set
        online = coalesce(v.online, d.online),
        active = d.active or v.ts <> '{}'::jsonb,
        active_ts = d.active_ts || v.ts
      from (values ${values}) as v(id, online, ts)
      where d.id = v.id`);
  }
}
export type PresenceRepository = ReturnType<typeof createPresenceRepository>;
