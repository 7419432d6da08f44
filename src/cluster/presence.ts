import type { Logger } from 'pino';
import type { PresenceChange, PresenceRepository } from '../db/repositories/presence.repository.ts';
import type { EventBus } from '../domain/events/event-bus.ts';
import { decodeJson, type Cluster } from './cluster.ts';
import { retryWhile } from './retry.ts';

/** The lease whose holder takes the devices of lost nodes offline (docs/cluster.md §3). */
export const PRESENCE_REAPER_LEASE = 'presence-reaper';
/** `reason` of the `device.offline` events of devices whose node was lost. */
export const NODE_LOST_REASON = 'node lost';
/** `transport` of those events: the cluster, not a connection, said it (device-protocol.md §11). */
export const NODE_LOST_TRANSPORT = 'cluster';

export interface ClusterPresenceDeps {
  cluster: Pick<
    Cluster,
    | 'nodeId'
    | 'leaseMs'
    | 'lease'
    | 'onNodeLost'
    | 'aliveNodes'
    | 'isAlive'
    | 'onReconnect'
    | 'subscribe'
    | 'publish'
    | 'subject'
    | 'tellReaped'
  >;
  repo: Pick<PresenceRepository, 'reapNode' | 'reapAllBut'>;
  /** This node's presence: re-asserts its live sessions after NATS comes back. */
  presence: { reassert(): Promise<number> };
  bus: Pick<EventBus, 'emit'>;
  /** This node's cached device counts of the project are stale (devices.service.ts countsChanged). */
  countsChanged: (projectId: string) => void;
  logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  clock?: () => number;
}

/**
 * Online state across the nodes of a cluster (docs/cluster.md §3):
 * - the holder of the lease `presence-reaper` takes offline, in one statement, the devices of a node whose
 *   heartbeat ended (killed, or cut off), and announces each once on its own bus (`device.offline`, reason
 *   `node lost`) so alarm rules and application subscriptions hear it; when it takes the lease it also
 *   sweeps the devices of nodes that died while nobody held it;
 * - a node that was cut off from NATS and comes back writes its live sessions online again;
 * - a node whose connects or disconnects were written tells the others, whose cached device counts of
 *   those projects are then counted again (instead of after their 2 s cache time).
 */
export function createClusterPresence({
  cluster,
  repo,
  presence,
  bus,
  countsChanged,
  logger,
  clock = Date.now,
}: ClusterPresenceDeps) {
  const countsSubject = cluster.subject('presence', 'counts');
  const off: (() => void)[] = [];
  let lease: { readonly held: boolean; release(): Promise<void> } | undefined;
  let sweepTimer: NodeJS.Timeout | undefined;
  // Reaps run one after the other: the same node lost twice is taken offline (and announced) once.
  let reaping: Promise<unknown> = Promise.resolve();
  // Nodes lost while this node did not hold the lease (the holder may have been the one lost): reaped at once
  // if it takes the lease (forgotten after a lease: the holder then was alive to do it).
  const lostMeanwhile = new Map<string, number>();
  const stopping = new AbortController();

  function announce(what: string, changed: PresenceChange[]) {
    if (!changed.length) return;
    const ts = clock();
    for (const d of changed) {
      bus.emit('device.offline', {
        projectId: d.projectId,
        deviceId: d.deviceId,
        transport: NODE_LOST_TRANSPORT,
        ts,
        reason: NODE_LOST_REASON,
      });
    }
    const projects = [...new Set(changed.map((d) => d.projectId))];
    projects.forEach(countsChanged);
    cluster.publish(countsSubject, { node: cluster.nodeId, projects });
    logger.warn({ what, devices: changed.length }, 'devices of a lost node taken offline');
  }

  function reap(what: string, run: () => Promise<PresenceChange[]>, node?: string) {
    reaping = reaping
      .then(async () => {
        if (!lease?.held) return;
        // Tried again while the database is away, as long as this node reaps and the node is still lost.
        let changed: PresenceChange[] = [];
        const done = await retryWhile({
          what: `taking the devices of ${what} offline`,
          task: async () => void (changed = await run()),
          still: () => (lease?.held ?? false) && (node === undefined || !cluster.isAlive(node)),
          signal: stopping.signal,
          logger,
        });
        if (!done) return;
        announce(what, changed);
        // A node judged lost that is alive after all (a stall) hears it, and writes its sessions online again.
        if (node) cluster.tellReaped(node);
      })
      .catch((err: unknown) => logger.error({ err, what }, 'taking the devices of a lost node offline failed'));
    return reaping;
  }

  return {
    start() {
      if (lease) return;
      off.push(
        cluster.onNodeLost((lost) => {
          if (lost === cluster.nodeId) return;
          if (!lease?.held) {
            for (const [n, at] of lostMeanwhile) if (clock() - at > cluster.leaseMs * 2) lostMeanwhile.delete(n);
            lostMeanwhile.set(lost, clock());
            return;
          }
          void reap(`node ${lost}`, () => repo.reapNode(lost, cluster.nodeId, clock()), lost);
        }),
        cluster.onReconnect(() => {
          presence
            .reassert()
            .then((n) => n && logger.info({ devices: n }, 'sessions of this node written online again'))
            .catch((err: unknown) => logger.error({ err }, 'writing the live sessions online again failed'));
        }),
        cluster.subscribe(countsSubject, (msg) => {
          const body = decodeJson<{ node?: unknown; projects?: unknown }>(msg.data);
          if (body.node === cluster.nodeId || !Array.isArray(body.projects)) return;
          for (const p of body.projects) if (typeof p === 'string') countsChanged(p);
        }),
      );
      lease = cluster.lease(PRESENCE_REAPER_LEASE, (held) => {
        if (sweepTimer) clearTimeout(sweepTimer);
        sweepTimer = undefined;
        if (!held) return;
        for (const [lost, at] of lostMeanwhile) {
          lostMeanwhile.delete(lost);
          if (clock() - at <= cluster.leaseMs * 2)
            void reap(`node ${lost}`, () => repo.reapNode(lost, cluster.nodeId, clock()), lost);
        }
        // At take-over: the nodes that died while nobody held the lease. One beat later, so the membership
        // this node knows is fresh (a node that just started is alive before its devices connect).
        sweepTimer = setTimeout(
          () => {
            sweepTimer = undefined;
            void reap('nodes lost before the lease was taken', () =>
              repo.reapAllBut([...cluster.aliveNodes()], cluster.nodeId, clock()),
            );
          },
          Math.max(100, Math.floor(cluster.leaseMs / 5)),
        );
        sweepTimer.unref();
      });
    },

    /** Connects or disconnects of these projects were written on this node: the other nodes recount. */
    countsChanged(projectIds: string[]) {
      if (projectIds.length) cluster.publish(countsSubject, { node: cluster.nodeId, projects: projectIds });
    },

    /** Whether this node holds the reaper lease now. */
    get reaper() {
      return lease?.held ?? false;
    },

    async stop() {
      stopping.abort();
      if (sweepTimer) clearTimeout(sweepTimer);
      sweepTimer = undefined;
      for (const f of off.splice(0)) f();
      const l = lease;
      lease = undefined;
      await reaping;
      await l?.release();
    },
  };
}
export type ClusterPresence = ReturnType<typeof createClusterPresence>;
