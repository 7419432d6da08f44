import type { Logger } from 'pino';
import type { PresenceRepository, PresenceRow } from '../../db/repositories/presence.repository.ts';
import type { EventBus } from '../events/event-bus.ts';
import type { DeviceIdentity } from './device-identity.ts';

/** Kinds of message whose latest time a device keeps (`active` of http-api.md §3). */
export type ActivityKind = 'attributes' | 'event' | 'command_reply' | 'data' | 'connect' | 'disconnect';

export interface PresenceServiceDeps {
  repo: PresenceRepository;
  bus: EventBus;
  logger: Pick<Logger, 'error'>;
  clock?: () => number;
  /** How often pending changes are written, in one statement for all devices. */
  flushMs?: number;
  /** Told, after they are written, which projects had devices go online or offline (counts cached elsewhere). */
  onOnlineWritten?: (projectIds: string[]) => void;
}

/**
 * Online state and last activity of devices (device-protocol.md §11), kept in memory and flushed in
 * batches: a report costs a map update, not a database write. Online changes are domain events.
 */
export function createPresenceService({ repo, bus, logger, clock = Date.now, flushMs = 1_000, onOnlineWritten }: PresenceServiceDeps) {
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

  async function flush(): Promise<void> {
    // One flush at a time; changes made while it runs go to the next one.
    const run = flushing.then(async () => {
      if (!pending.size) return;
      const batch = [...pending.values()];
      const version = onlineVersion;
      const projects = onlineProjects;
      writing = pending;
      pending = new Map();
      onlineProjects = new Set();
      try {
        await repo.apply(batch);
        writing = undefined;
        writtenVersion = Math.max(writtenVersion, version);
        if (projects.size) onOnlineWritten?.([...projects]);
      } catch (err) {
        writing = undefined;
        for (const p of projects) onlineProjects.add(p);
        logger.error({ err }, 'presence flush failed; will retry');
        // Put the batch back under anything newer that arrived meanwhile.
        for (const row of batch) {
          const newer = pending.get(row.deviceId);
          if (!newer) pending.set(row.deviceId, row);
          else {
            newer.activeTs = { ...row.activeTs, ...newer.activeTs };
            if (newer.online === undefined) newer.online = row.online;
          }
        }
        throw err;
      }
    });
    flushing = run.catch(() => {});
    return run;
  }

  return {
    connected(device: DeviceIdentity, transport: string) {
      const ts = clock();
      const row = rowOf(device.deviceId);
      row.online = true;
      onlineVersion++;
      onlineProjects.add(device.projectId);
      note(device.deviceId, 'connect', ts);
      bus.emit('device.online', { projectId: device.projectId, deviceId: device.deviceId, transport, ts });
    },

    disconnected(device: DeviceIdentity, transport: string, reason: string) {
      const ts = clock();
      const row = rowOf(device.deviceId);
      row.online = false;
      onlineVersion++;
      onlineProjects.add(device.projectId);
      note(device.deviceId, 'disconnect', ts);
      bus.emit('device.offline', { projectId: device.projectId, deviceId: device.deviceId, transport, ts, reason });
    },

    /** A message of `kind` arrived from the device at `ts`. */
    touch(deviceId: string, kind: ActivityKind, ts = clock()) {
      note(deviceId, kind, ts);
    },

    flush,

    /**
     * Before a read of online state (device, device list, stats): writes pending connects and disconnects
     * so the read shows them. Costs nothing when none is pending; a failed write is logged by flush and
     * the read answers what the database holds.
     */
    async settle(): Promise<void> {
      if (writtenVersion >= onlineVersion) return;
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

    /** At start: no session survives a restart of a single node. */
    resetOnline: () => repo.resetOnline(),

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
