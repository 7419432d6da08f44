import type { AttributeValueRow } from '../../db/repositories/attribute-values.repository.ts';
import type { BatchMarks, HistoryRepository, TelemetryRow } from '../../db/repositories/history.repository.ts';

const CHECKPOINT = 'current_values';

export interface CurrentCacheOptions {
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
  /**
   * Cluster mode (docs/cluster.md §4): each node flushes only its own values, so each records its own
   * checkpoint (`current_values@<node>`). The cluster-wide one, from which a starting node recovers, is
   * moved by one node (`keeper`: it holds the lease) to the oldest checkpoint of the live nodes, so it
   * never passes another node's unflushed values; a lost node's values are rebuilt from its checkpoint
   * before the cluster-wide one passes it. Unset: one node, one checkpoint.
   */
  cluster?: { node: string; keeper: () => boolean; alive: () => Iterable<string> };
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
  history,
  clock = Date.now,
  flushMs = 1_000,
  freshMs = 30_000,
  logger,
  cluster,
}: CurrentCacheOptions) {
  /** The checkpoint this node's flushes record. */
  const own = cluster ? `${CHECKPOINT}@${cluster.node}` : CHECKPOINT;
  /** Lost nodes whose values are being rebuilt: the cluster-wide checkpoint waits for them. */
  const rebuilding = new Set<string>();
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
      await history.flushCurrent(
        [...batch.values()].flatMap((m) => [...m.values()]),
        own,
        startedAt,
      );
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

  /** Cluster mode: this node took the keeper lease and has not yet rebuilt the values of nodes lost before. */
  let recovering = false;

  /** Cluster mode, on the keeper: the cluster-wide checkpoint moves to the oldest of the live and lost nodes'. */
  async function advanceShared(): Promise<void> {
    // Not past the values of nodes lost while nobody kept it, until keeperTaken rebuilt them.
    if (!cluster?.keeper() || recovering) return;
    let oldest = Infinity;
    for (const n of new Set([...cluster.alive(), ...rebuilding])) {
      const ts = await history.checkpoint(`${CHECKPOINT}@${n}`);
      // A live node without a checkpoint is starting: it records one before it takes devices.
      if (ts !== undefined) oldest = Math.min(oldest, ts);
    }
    if (Number.isFinite(oldest)) await history.advanceCheckpoint(CHECKPOINT, oldest);
  }

  const keep = () =>
    advanceShared().catch((err: unknown) => logger?.warn({ err }, 'cluster current-values checkpoint not moved'));

  return {
    freshMs,

    /**
     * Writes one ingest batch (the ingest's `write`): partitions first (DDL outside the batch), then the
     * history rows with the current values that cannot wait (pushes, cloud, back-dated reports) in one
     * transaction; fresh reports' current values join the cache once committed and are written once
     * per `flushMs`.
     */
    async write(rows: TelemetryRow[], batchId: string, marks?: BatchMarks): Promise<void> {
      await history.ensurePartitions(rows.filter((r) => r.history).map((r) => history.dayOf(r.ts)));
      // The write is in flight until it ends (the flush's checkpoint stays behind its start). Reports received
      // within `freshMs` of its start leave their current value to the cache once committed; the others are
      // written with it. (Inline, not named closures: under tsx each costs a `__name` call per batch.)
      const w = { start: clock() };
      inFlight.add(w);
      try {
        const since = w.start - freshMs;
        const fresh = rows.filter((r) => r.history && r.ts >= since);
        await history.writeBatch(
          rows,
          fresh.length ? rows.filter((r) => !(r.history && r.ts >= since)) : rows,
          batchId,
          clock(),
          marks,
        );
        add(fresh);
      } finally {
        inFlight.delete(w);
      }
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

    /**
     * Rebuilds current values lost by a crash from history; run before accepting devices. In cluster
     * mode from the cluster-wide checkpoint (no later than any node's unflushed values).
     */
    async recover(): Promise<number> {
      const startedAt = clock();
      const checkpoint = await history.checkpoint(CHECKPOINT);
      const n = checkpoint !== undefined ? await history.rebuildCurrentSince(checkpoint - freshMs) : 0;
      if (n) logger?.info({ values: n }, 'current values recovered from history');
      // Everything before this start is now current: a crash before the first flush recovers from here.
      await history.advanceCheckpoint(own, startedAt);
      await advanceShared();
      return n;
    },

    /**
     * Cluster mode: a node was lost (docs/cluster.md §4). The keeper rebuilds its unflushed values from
     * history since its checkpoint; the cluster-wide checkpoint does not pass it until then.
     */
    async nodeLost(node: string): Promise<number> {
      if (!cluster?.keeper()) return 0;
      // Held back until the rebuild succeeds (a failed one is tried again: services.ts), or `settled`.
      rebuilding.add(node);
      const ts = await history.checkpoint(`${CHECKPOINT}@${node}`);
      const n = ts !== undefined ? await history.rebuildCurrentSince(ts - freshMs) : 0;
      if (n) logger?.info({ values: n, lostNode: node }, 'current values of a lost node recovered from history');
      rebuilding.delete(node);
      return n;
    },

    /**
     * The rebuild of a lost node's values is no longer this node's to do (it gave up the keeper lease, or the
     * node is back): the cluster-wide checkpoint no longer waits for it here.
     */
    settled(node: string): void {
      rebuilding.delete(node);
    },

    /**
     * Cluster mode: this node became the keeper. Nodes lost while nobody kept the checkpoint (the keeper
     * itself, say) left their values after the cluster-wide checkpoint: they are rebuilt from there.
     */
    async keeperTaken(): Promise<number> {
      recovering = true;
      const checkpoint = await history.checkpoint(CHECKPOINT);
      const n = checkpoint !== undefined ? await history.rebuildCurrentSince(checkpoint - freshMs) : 0;
      if (n) logger?.info({ values: n }, 'current values of lost nodes recovered from history');
      recovering = false;
      await keep();
      return n;
    },

    flush,
    start() {
      timer = setInterval(() => {
        // Cluster mode: the checkpoint of a node with nothing to write moves too (the keeper's minimum).
        if (!pending.size && !cluster) return;
        flush()
          .then(keep)
          .catch((err: unknown) => logger?.warn({ err }, 'current values not written; retrying'));
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
