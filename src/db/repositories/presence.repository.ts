import { sql, type SQL } from 'drizzle-orm';
import { rowsOf, runPrepared, type Db } from '../client.ts';
import { devices } from '../schema/index.ts';

export interface PresenceRow {
  deviceId: string;
  /** Undefined = unchanged. */
  online?: boolean;
  /**
   * Cluster mode (docs/cluster.md §3): the epoch of the session that went online or offline (the order of
   * the device's logins cluster-wide); undefined while it is not known yet.
   */
  epoch?: number;
  /** Latest time of each kind of message to merge into `active_ts`. */
  activeTs: Record<string, number>;
}

/** A device taken offline by the cluster (its node was lost), or taken back online by its node. */
export interface PresenceChange {
  deviceId: string;
  projectId: string;
}

/**
 * Devices per statement of a flush (and of a re-assertion): one chunk at a time, the event loop free while each
 * statement runs, so a flush of a busy second (one row per device that reported) holds the loop ~1 ms at a time,
 * not for the whole batch.
 */
const PRESENCE_CHUNK = 250;

/**
 * The changes of a chunk as rows of one JSON parameter (one statement text whatever the chunk's size, so it
 * stays prepared; a VALUES list of 3–4 parameters a row cost more to build than to run, and was planned anew
 * every time).
 */
const changesOf = (rows: PresenceRow[]): SQL =>
  sql`jsonb_to_recordset(${JSON.stringify(
    rows.map((r) => ({ id: r.deviceId, online: r.online ?? null, epoch: r.epoch ?? null, ts: r.activeTs })),
  )}::jsonb)`;

/**
 * Whether a node may write "online" for a session of epoch `v.epoch` (docs/cluster.md §3): over an older
 * session or none; without its epoch yet, only where no other node's session is online.
 */
const mayGoOnline = (node: string) => sql`(case when v.epoch is not null
      then d.session_epoch is null or d.session_epoch <= v.epoch
      else not d.online or d.session_node is null or d.session_node = ${node} end)`;

/** Whether a node may write "offline" for its session of epoch `v.epoch`: only over that session (or an older one of its own). */
const mayGoOffline = (node: string) =>
  sql`(d.session_node = ${node} and (v.epoch is null or d.session_epoch is null or d.session_epoch <= v.epoch))`;

export function createPresenceRepository(db: Db) {
  return {
    /**
     * Applies many devices' changes in a few statements (architecture.md §9: no write per message). With
     * `node` (cluster mode), online state is written under the session rules of docs/cluster.md §3.
     */
    async apply(all: PresenceRow[], node?: string): Promise<void> {
      // Chunks bound each statement's size and the time its row locks are held.
      for (let i = 0; i < all.length; i += PRESENCE_CHUNK) {
        const chunk = all.slice(i, i + PRESENCE_CHUNK);
        await (node === undefined ? applyChunk(chunk) : applyClusterChunk(chunk, node));
      }
    },

    /**
     * No session survives a restart of a single node: nothing is online when it starts. In cluster mode
     * (`node`), only this node's sessions (a restart under the same NODE_ID) and those no node claims
     * (written before cluster mode): other nodes' devices stay online.
     */
    async resetOnline(node?: string): Promise<void> {
      if (node === undefined) await db.execute(sql`update ${devices} set online = false where online`);
      else
        await db.execute(
          sql`update ${devices} set online = false where online and (session_node = ${node} or session_node is null)`,
        );
    },

    /**
     * Cluster mode: session epochs above `last`, the directory's greatest, come from a directory that is gone
     * (its bucket was made anew and counts from 1 again): they are forgotten, so new sessions' writes are not
     * refused as older (docs/cluster.md §3).
     */
    async forgetEpochsAbove(last: number): Promise<number> {
      const rows = await db.execute(
        sql`update ${devices} set session_epoch = null where session_epoch > ${last} returning id`,
      );
      return rowsOf(rows).length;
    },

    /**
     * Cluster mode: the devices online through node `lost` (dead, or cut off) go offline, their last
     * disconnect at `ts`, held by `reaper` from now on (its late writes cannot touch them); answers them.
     */
    async reapNode(lost: string, reaper: string, ts: number): Promise<PresenceChange[]> {
      return offline(sql`session_node = ${lost}`, reaper, ts);
    },

    /** Cluster mode: the devices online through none of the `alive` nodes go offline (reapNode's rules). */
    async reapAllBut(alive: readonly string[], reaper: string, ts: number): Promise<PresenceChange[]> {
      const list = sql.join(
        alive.map((n) => sql`${n}`),
        sql`, `,
      );
      const notAlive = alive.length ? sql`(session_node is null or session_node not in (${list}))` : sql`true`;
      return offline(notAlive, reaper, ts);
    },

    /**
     * Cluster mode: node `node` says again that these sessions of its own are live (after it was cut off
     * from the cluster: it may have been reaped meanwhile). Answers the devices this turned online.
     */
    async reassert(rows: { deviceId: string; epoch?: number | undefined }[], node: string): Promise<PresenceChange[]> {
      const out: PresenceChange[] = [];
      for (let i = 0; i < rows.length; i += PRESENCE_CHUNK) {
        const values = sql.join(
          rows.slice(i, i + PRESENCE_CHUNK).map((r) => sql`(${r.deviceId}, ${r.epoch ?? null}::bigint)`),
          sql`, `,
        );
        const result = await db.execute(sql`
          update ${devices} d set
            online = true,
            session_node = ${node},
            session_epoch = coalesce(v.epoch, d.session_epoch)
          from (values ${values}) as v(id, epoch)
          where d.id = v.id and not (d.online and d.session_node = ${node}) and ${mayGoOnline(node)}
          returning d.id as "deviceId", d.project_id as "projectId"`);
        out.push(...rowsOf<PresenceChange>(result));
      }
      return out;
    },
  };

  async function offline(where: SQL, reaper: string, ts: number): Promise<PresenceChange[]> {
    const result = await db.execute(sql`
      update ${devices} set
        online = false,
        session_node = ${reaper},
        active_ts = active_ts || jsonb_build_object('disconnect', ${ts}::bigint)
      where online and ${where}
      returning id as "deviceId", project_id as "projectId"`);
    return rowsOf<PresenceChange>(result);
  }

  async function applyChunk(rows: PresenceRow[]): Promise<void> {
    await runPrepared(
      db,
      sql`
      update ${devices} d set
        online = coalesce(v.online, d.online),
        active = d.active or v.ts <> '{}'::jsonb,
        active_ts = d.active_ts || v.ts
      from ${changesOf(rows)} as v(id text, online boolean, epoch bigint, ts jsonb)
      where d.id = v.id`,
    );
  }

  /**
   * The same write in cluster mode, still one statement: online only over an older session, offline only
   * over this node's own session (docs/cluster.md §3), so a late disconnect on one node never takes a
   * device offline that another node holds now. Activity times are merged whoever holds the session.
   */
  async function applyClusterChunk(rows: PresenceRow[], node: string): Promise<void> {
    const on = mayGoOnline(node);
    await runPrepared(
      db,
      sql`
      update ${devices} d set
        online = case
          when v.online is null then d.online
          when v.online then (case when ${on} then true else d.online end)
          else (case when ${mayGoOffline(node)} then false else d.online end)
        end,
        session_node = case when v.online and ${on} then ${node} else d.session_node end,
        session_epoch = case when v.online and ${on} then coalesce(v.epoch, d.session_epoch) else d.session_epoch end,
        active = d.active or v.ts <> '{}'::jsonb,
        active_ts = d.active_ts || v.ts
      from ${changesOf(rows)} as v(id text, online boolean, epoch bigint, ts jsonb)
      where d.id = v.id`,
    );
  }
}
export type PresenceRepository = ReturnType<typeof createPresenceRepository>;
