import { sql } from 'drizzle-orm';
import type { Db, Tx } from '../../db/client.ts';
import type { AttributeValueRow } from '../../db/repositories/attribute-values.repository.ts';
import type { HistoryRepository, TelemetryRow } from '../../db/repositories/history.repository.ts';
import { telemetryCheckpoints } from '../../db/schema.ts';
import { rowsOf } from '../../db/timescale.ts';

const CHECKPOINT = 'current_values';

/** Moves the checkpoint forward to `ts` (never back). */
const writeCheckpoint = (tx: Tx, ts: number) =>
  tx
    .insert(telemetryCheckpoints)
    .values({ name: CHECKPOINT, ts })
    .onConflictDoUpdate({
      target: telemetryCheckpoints.name,
      set: { ts: sql`greatest(${telemetryCheckpoints.ts}, excluded.ts)` },
    });

export interface CurrentCacheOptions {
  db: Db;
  history: HistoryRepository;
  clock?: () => number;
  /** How often pending current values are written. */
  flushMs?: number;
  /**
   * A report is "fresh" when its time is within this many ms of now: its current value waits in
   * memory; older (back-dated or long-delayed) ones are written with their batch. Recovery after a
   * crash re-reads history from the last checkpoint minus this.
   */
  freshMs?: number;
  logger?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
}

/**
 * Current values of fresh reports, kept in memory and written once per interval (architecture.md §9:
 * current values live in memory and are flushed): a device reporting ten times a second costs one
 * upsert per attribute per interval instead of ten, and the hot path of a batch is one INSERT.
 *
 * Nothing acknowledged is lost: the report itself is durable in history before it is acknowledged,
 * and every flush records a checkpoint in the same transaction. After a crash, `recover()` rebuilds
 * current values from the history written since `checkpoint − freshMs` (a batch committed after the
 * checkpoint holds only reports received at most `freshMs` before it; slower ones were written with
 * their batch). Reads on this node overlay what is waiting, so they never go backwards.
 */
export function createCurrentCache({
  db,
  history,
  clock = Date.now,
  flushMs = 1_000,
  freshMs = 30_000,
  logger,
}: CurrentCacheOptions) {
  /** deviceId → identifier → newest committed value not yet written. */
  let pending = new Map<string, Map<string, TelemetryRow>>();
  let timer: NodeJS.Timeout | undefined;
  let flushing: Promise<void> | undefined;
  /** Start times of batch writes in flight: the checkpoint never passes them. */
  const inFlight = new Set<{ start: number }>();

  function add(rows: Iterable<TelemetryRow>) {
    for (const r of rows) {
      let byId = pending.get(r.deviceId);
      if (!byId) pending.set(r.deviceId, (byId = new Map()));
      const seen = byId.get(r.identifier);
      if (!seen || seen.ts <= r.ts) byId.set(r.identifier, r);
    }
  }

  async function flushOnce(): Promise<void> {
    // Whatever is added after this snapshot comes from a write started after it, or in flight now.
    let startedAt = clock();
    for (const w of inFlight) startedAt = Math.min(startedAt, w.start);
    const batch = pending;
    pending = new Map();
    try {
      await db.transaction(async (tx) => {
        await history.upsertCurrent(
          tx,
          [...batch.values()].flatMap((m) => [...m.values()]),
        );
        await writeCheckpoint(tx, startedAt);
      });
    } catch (err) {
      // Put them back under anything newer that arrived meanwhile; the next tick retries.
      const newer = pending;
      pending = batch;
      for (const m of newer.values()) add(m.values());
      throw err;
    }
  }

  const flush = (): Promise<void> => {
    flushing ??= flushOnce().finally(() => {
      flushing = undefined;
    });
    return flushing;
  };

  return {
    freshMs,
    /**
     * Registers a batch write: `fresh` tells which of its rows may leave their current value to the
     * cache (reports received within `freshMs` of the write's start); call `committed` with those
     * after the transaction committed, and `end` in any case.
     */
    begin() {
      const w = { start: clock() };
      inFlight.add(w);
      return {
        fresh: (row: TelemetryRow) => row.history && row.ts >= w.start - freshMs,
        committed: (rows: Iterable<TelemetryRow>) => add(rows),
        end: () => void inFlight.delete(w),
      };
    },

    /** Current values with what is waiting overlaid (newest wins): what `attributes/get` and reads see. */
    overlay(deviceId: string, rows: AttributeValueRow[], keys?: string[]): AttributeValueRow[] {
      const waiting = pending.get(deviceId);
      if (!waiting?.size) return rows;
      const byId = new Map(rows.map((r) => [r.identifier, r]));
      for (const w of waiting.values()) {
        if (keys && !keys.includes(w.identifier)) continue;
        const stored = byId.get(w.identifier);
        if (!stored || stored.ts <= w.ts)
          byId.set(w.identifier, {
            identifier: w.identifier,
            value: w.value,
            attrType: w.attrType,
            dataType: w.dataType,
            ts: w.ts,
          });
      }
      return [...byId.values()].sort((a, b) =>
        a.identifier < b.identifier ? -1 : a.identifier > b.identifier ? 1 : 0,
      );
    },

    /** Forgets waiting values (attributes_remove, device deleted). */
    forget(deviceId: string, identifiers?: string[]) {
      if (!identifiers) return void pending.delete(deviceId);
      const waiting = pending.get(deviceId);
      for (const i of identifiers) waiting?.delete(i);
    },

    /** Rebuilds current values lost by a crash from history; run before accepting devices. */
    async recover(): Promise<number> {
      const startedAt = clock();
      const rows = rowsOf<{ ts: string | number }>(
        await db.execute(sql`select ts from telemetry_checkpoints where name = ${CHECKPOINT}`),
      );
      const n = rows.length ? await history.rebuildCurrentSince(Number(rows[0]!.ts) - freshMs) : 0;
      if (n) logger?.info({ values: n }, 'current values recovered from history');
      // Everything before this start is now current: a crash before the first flush recovers from here.
      await writeCheckpoint(db, startedAt);
      return n;
    },

    flush,
    start() {
      timer = setInterval(() => {
        if (!pending.size) return;
        flush().catch((err: unknown) => logger?.warn({ err }, 'current values not written; retrying'));
      }, flushMs);
      timer.unref();
    },
    /** Writes what is waiting (graceful stop). */
    async stop(): Promise<void> {
      if (timer) clearInterval(timer);
      timer = undefined;
      await flushing?.catch(() => {});
      if (pending.size) await flush();
    },
    get size() {
      let n = 0;
      for (const m of pending.values()) n += m.size;
      return n;
    },
  };
}
export type CurrentCache = ReturnType<typeof createCurrentCache>;
