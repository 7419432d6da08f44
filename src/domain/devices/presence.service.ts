import type { Logger } from 'pino';
import type { PresenceRepository, PresenceRow } from '../../db/repositories/presence.repository.ts';
import type { EventBus } from '../events/event-bus.ts';
import type { DeviceIdentity } from './device-identity.ts';

/** Kinds of message whose latest time a device keeps (`active` of http-api.md §3). */
export type ActivityKind = 'attributes' | 'event' | 'command_reply' | 'data' | 'connect' | 'disconnect';

export interface PresenceServiceDeps {
  /** `reassert` is needed in cluster mode only. */
  repo: Pick<PresenceRepository, 'apply' | 'resetOnline'> & Partial<Pick<PresenceRepository, 'reassert'>>;
  bus: EventBus;
  logger: Pick<Logger, 'error'>;
  clock?: () => number;
  /** How often pending changes are written, in one statement for all devices. */
  flushMs?: number;
  /** Told, after they are written, which projects had devices go online or offline (counts cached elsewhere). */
  onOnlineWritten?: (projectIds: string[]) => void;
  /**
   * Cluster mode (docs/cluster.md §3): this node's id. Online state is then written under the session
   * rules (online over an older session only, offline over this node's own session only), and the node
   * keeps its live sessions' epochs. Unset = one node: writes as always.
   */
  node?: string | undefined;
  /**
   * Cluster mode: whether this node still holds a session of the device. A session replaced by a newer
   * login on another node ends without a disconnect (no offline moment), so a re-assertion asks this first.
   */
  holds?: (deviceId: string) => boolean;
}

/** A session live on this node (cluster mode): what a re-assertion writes and a disconnect is conditioned on. */
interface LiveSession {
  projectId: string;
  transport: string;
  epoch?: number;
}

/** How long an epoch told before its session attached waits for it (docs/cluster.md §3). */
const EARLY_EPOCH_MS = 10_000;

/**
 * Online state and last activity of devices (device-protocol.md §11), kept in memory and flushed in
 * batches: a report costs a map update, not a database write. Online changes are domain events.
 */
export function createPresenceService({
  repo,
  bus,
  logger,
  clock = Date.now,
  flushMs = 1_000,
  onOnlineWritten,
  node,
  holds,
}: PresenceServiceDeps) {
  let pending = new Map<string, PresenceRow>();
  let timer: NodeJS.Timeout | undefined;
  let flushing: Promise<void> = Promise.resolve();
  /** The batch being written, still readable until it is (activity overlay). */
  let writing: Map<string, PresenceRow> | undefined;
  // Read-your-writes for online state (`online` is live: http-api.md §3): every connect or disconnect bumps `onlineVersion`;
  // a flush that wrote everything up to a version records it in `writtenVersion`. Reads of online state
  // call settle(), which flushes only while a connect or disconnect is still unwritten.
  let onlineVersion = 0;
  let writtenVersion = 0;
  let onlineProjects = new Set<string>();
  // At most one write runs and one waits (architecture.md §9: no write per message, nor per read): `running`
  // is the write under way with the online version its batch holds; `queued` is the flush waiting for it, which
  // every caller shares: it takes everything pending when it starts.
  let running: { version: number; done: Promise<void> } | undefined;
  let queued: Promise<void> | undefined;
  /** After a failed write, reads do not write again before this time (the timer keeps retrying). */
  let settleAfter = 0;
  // Cluster mode only (one node keeps no per-session state here): the sessions live on this node, and
  // epochs told before their session attached.
  const live = node === undefined ? undefined : new Map<string, LiveSession>();
  const early = node === undefined ? undefined : new Map<string, { epoch: number; at: number }>();

  function rowOf(deviceId: string): PresenceRow {
    let row = pending.get(deviceId);
    if (!row) {
      row = { deviceId, activeTs: {} };
      pending.set(deviceId, row);
    }
    return row;
  }

  function note(deviceId: string, kind: ActivityKind, ts: number) {
    const row = rowOf(deviceId);
    row.activeTs[kind] = Math.max(row.activeTs[kind] ?? 0, ts);
  }

  function flush(): Promise<void> {
    // One flush at a time; changes made while it runs go to the next one, shared by all who ask meanwhile.
    if (queued) return queued;
    const run = flushing.then(async () => {
      queued = undefined;
      if (!pending.size) return;
      const batch = [...pending.values()];
      const version = onlineVersion;
      const projects = onlineProjects;
      writing = pending;
      pending = new Map();
      onlineProjects = new Set();
      // Readers of `running` go on once the bookkeeping below is done (the whole run has ended).
      running = {
        version,
        done: run.then(
          () => {},
          () => {},
        ),
      };
      try {
        if (early?.size) for (const [id, e] of early) if (clock() - e.at > EARLY_EPOCH_MS) early.delete(id);
        await (node === undefined ? repo.apply(batch) : repo.apply(batch, node));
        running = undefined;
        writing = undefined;
        settleAfter = 0;
        writtenVersion = Math.max(writtenVersion, version);
        if (projects.size) onOnlineWritten?.([...projects]);
      } catch (err) {
        running = undefined;
        writing = undefined;
        settleAfter = clock() + flushMs;
        for (const p of projects) onlineProjects.add(p);
        logger.error({ err }, 'presence flush failed; will retry');
        // Put the batch back under anything newer that arrived meanwhile.
        for (const row of batch) {
          const newer = pending.get(row.deviceId);
          if (!newer) pending.set(row.deviceId, row);
          else {
            newer.activeTs = { ...row.activeTs, ...newer.activeTs };
            if (newer.online === undefined) {
              newer.online = row.online;
              if (row.epoch !== undefined) newer.epoch = row.epoch;
            }
          }
        }
        throw err;
      }
    });
    flushing = run.catch(() => {});
    queued = run;
    return run;
  }

  return {
    connected(device: DeviceIdentity, transport: string) {
      const ts = clock();
      const row = rowOf(device.deviceId);
      row.online = true;
      if (live) {
        const told = early!.get(device.deviceId);
        early!.delete(device.deviceId);
        const epoch = told && ts - told.at <= EARLY_EPOCH_MS ? told.epoch : undefined;
        live.set(device.deviceId, { projectId: device.projectId, transport, ...(epoch ? { epoch } : {}) });
        if (epoch) row.epoch = epoch;
        else delete row.epoch;
      }
      onlineVersion++;
      onlineProjects.add(device.projectId);
      note(device.deviceId, 'connect', ts);
      bus.emit('device.online', { projectId: device.projectId, deviceId: device.deviceId, transport, ts });
    },

    disconnected(device: DeviceIdentity, transport: string, reason: string) {
      const ts = clock();
      const row = rowOf(device.deviceId);
      row.online = false;
      if (live) {
        const epoch = live.get(device.deviceId)?.epoch;
        live.delete(device.deviceId);
        if (epoch) row.epoch = epoch;
        else delete row.epoch;
      }
      onlineVersion++;
      onlineProjects.add(device.projectId);
      note(device.deviceId, 'disconnect', ts);
      bus.emit('device.offline', { projectId: device.projectId, deviceId: device.deviceId, transport, ts, reason });
    },

    /**
     * A session of the device ended on this node without a disconnect: a newer login replaced it (here, or
     * on another node: docs/cluster.md §3). The device stays online, so nothing is written; in cluster mode
     * the session is no longer live here unless this node holds a newer one of the device (`holds`).
     */
    replaced(deviceId: string) {
      if (!live) return;
      // Without `holds` the newer session may be this node's (its connect can come before this): kept
      // until a re-assertion asks.
      if (holds && !holds(deviceId)) live.delete(deviceId);
    },

    /**
     * Cluster mode: the epoch of the device's session on this node (its login's place in the cluster-wide
     * order, docs/cluster.md §3), told shortly after the attach. Online state is written with it: "online"
     * only over an older session, "offline" only over this one. An epoch told before its session attached
     * waits for it a few seconds. Ignored on one node.
     */
    sessionEpoch(deviceId: string, epoch: number) {
      if (typeof deviceId !== 'string' || !deviceId) throw new TypeError('sessionEpoch: deviceId must be a device id');
      if (!Number.isSafeInteger(epoch) || epoch <= 0)
        throw new RangeError(`sessionEpoch: epoch must be a positive integer, got ${String(epoch)}`);
      if (!live) return;
      const session = live.get(deviceId);
      const pendingRow = pending.get(deviceId);
      if (session) {
        // Epochs only grow: a late one of an earlier session of this node changes nothing.
        if (session.epoch !== undefined && session.epoch >= epoch) return;
        session.epoch = epoch;
        // The online write carries it (a second write when "online" was written without it).
        const row = rowOf(deviceId);
        row.online = true;
        row.epoch = epoch;
        onlineVersion++;
        onlineProjects.add(session.projectId);
        return;
      }
      // The session ended before its epoch came: its "offline" is conditioned on it.
      if (pendingRow?.online === false && pendingRow.epoch === undefined) pendingRow.epoch = epoch;
      // Or the session has not attached yet.
      early!.set(deviceId, { epoch, at: clock() });
    },

    /**
     * Cluster mode: writes "online" again for every session live on this node (after this node was cut
     * off from the cluster, it may have been reaped meanwhile: docs/cluster.md §3); the devices that this
     * turned online again are announced (`device.online`) and recounted. Runs after the flush under way.
     */
    async reassert(): Promise<number> {
      if (!live || node === undefined) return 0;
      const reassertRows = repo.reassert;
      if (!reassertRows) throw new Error('presence: cluster mode needs a repository with reassert');
      const run = flushing.then(async () => {
        // Sessions replaced from another node ended here without a disconnect: forgotten now.
        if (holds) for (const id of [...live.keys()]) if (!holds(id)) live.delete(id);
        const sessions = [...live].map(([deviceId, s]) => ({ deviceId, epoch: s.epoch }));
        if (!sessions.length) return 0;
        const back = await reassertRows(sessions, node);
        const ts = clock();
        for (const d of back) {
          const s = live.get(d.deviceId);
          bus.emit('device.online', {
            projectId: d.projectId,
            deviceId: d.deviceId,
            transport: s?.transport ?? 'cluster',
            ts,
          });
        }
        if (back.length) onOnlineWritten?.([...new Set(back.map((d) => d.projectId))]);
        return back.length;
      });
      flushing = run.then(
        () => {},
        () => {},
      );
      return run;
    },

    /** Sessions live on this node (cluster mode; 0 on one node, which does not keep them). */
    get liveCount() {
      return live?.size ?? 0;
    },

    /** A message of `kind` arrived from the device at `ts`. */
    touch(deviceId: string, kind: ActivityKind, ts = clock()) {
      note(deviceId, kind, ts);
    },

    flush,

    /**
     * Before a read of online state (device, device list, stats): writes pending connects and disconnects
     * so the read shows them. Costs nothing when none is pending. Concurrent reads share writes: a read waits
     * for the write under way when it holds every change the read must see, else for the one flush queued
     * after it. A failed write is logged by flush and the read answers what the database holds; for
     * `flushMs` after it reads do not write at all (the timer retries), so an outage costs no write per read.
     */
    async settle(): Promise<void> {
      const target = onlineVersion;
      if (writtenVersion >= target || clock() < settleAfter) return;
      if (running && running.version >= target) return running.done;
      await flush().catch(() => {});
    },

    /**
     * The latest message times of a device not written yet (undefined when none): reads lay them over
     * the stored `active`, so a report shows at once without a write per report.
     */
    activity(deviceId: string): Record<string, number> | undefined {
      const a = writing?.get(deviceId)?.activeTs;
      const b = pending.get(deviceId)?.activeTs;
      if (!a && !b) return undefined;
      return { ...a, ...b };
    },

    /**
     * At start: no session survives a restart of a single node. In cluster mode only this node's own
     * sessions are reset (a restart under the same NODE_ID), never another node's (docs/cluster.md §3).
     */
    resetOnline: () => (node === undefined ? repo.resetOnline() : repo.resetOnline(node)),

    get pendingCount() {
      return pending.size;
    },

    start() {
      timer ??= setInterval(() => void flush().catch(() => {}), flushMs);
      timer.unref();
    },

    /** Stops the timer and writes what is pending (graceful stop). */
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await flush();
    },
  };
}
export type PresenceService = ReturnType<typeof createPresenceService>;
