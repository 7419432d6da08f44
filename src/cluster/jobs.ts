import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Cluster, Lease } from './cluster.ts';
import { retryWhile } from './retry.ts';

/**
 * The jobs that run once in a cluster (docs/cluster.md §4): each is a lease, run by whichever node holds it
 * and taken over within a lease time when that node dies.
 */
export const JOB_LEASES = {
  /** Devices whose session node is unknown or dead: their connection and silence alarm timers. */
  alarmOrphans: 'alarm-orphans',
  /** Sent commands past their reply timeout, queued ones past their TTL (device-protocol.md §10). */
  commandSweeper: 'command-sweeper',
  /** History retention and partitions ahead (README "Telemetry history"). */
  retention: 'retention',
  /** TimescaleDB compression and retention policies (removed and added again: one node at a time). */
  historyPolicies: 'history-policies',
  /** The cluster-wide current-values checkpoint (src/domain/telemetry/current-cache.ts). */
  currentCheckpoint: 'current-checkpoint',
} as const;
export type JobLease = (typeof JOB_LEASES)[keyof typeof JOB_LEASES];

export interface ClusterJobsDeps {
  cluster: Pick<Cluster, 'nodeId' | 'leaseMs' | 'lease' | 'isAlive' | 'onNodeLost'>;
  logger: Pick<Logger, 'warn' | 'error'>;
}

/** The leases of the cluster's one-at-a-time jobs, and the alarm engine's ownership of devices. */
export function createClusterJobs({ cluster, logger }: ClusterJobsDeps) {
  const leases = new Map<JobLease, { lease: Lease; taken: Set<() => void> }>();
  const stopping = new AbortController();

  const run = (name: string, fn: () => void) => {
    try {
      fn();
    } catch (err) {
      logger.error({ err, lease: name }, 'job on taking a lease failed');
    }
  };

  /** The lease `name`, taken (and held while this node lives) from its first use. */
  function get(name: JobLease) {
    let entry = leases.get(name);
    if (!entry) {
      const taken = new Set<() => void>();
      const lease = cluster.lease(name, (held) => {
        if (held) for (const fn of taken) run(name, fn);
      });
      entry = { lease, taken };
      leases.set(name, entry);
    }
    return entry;
  }

  return {
    nodeId: cluster.nodeId,
    leaseMs: cluster.leaseMs,

    /** Whether this node runs the job `name` now (it holds the lease). */
    runs(name: JobLease): () => boolean {
      const { lease } = get(name);
      return () => lease.held;
    },

    /** Calls `fn` whenever this node takes the lease `name` (at once when it holds it already). */
    onTaken(name: JobLease, fn: () => void): void {
      const entry = get(name);
      entry.taken.add(fn);
      if (entry.lease.held) run(name, fn);
    },

    /** Calls `fn` with the id of every node lost (its heartbeat ended). */
    onNodeLost(fn: (nodeId: string) => void): void {
      cluster.onNodeLost(fn);
    },

    /**
     * Which node runs a device's connection and silence alarm timers (docs/cluster.md §4): the node named
     * by its `session_node` (holding or last holding its session); a device with none, or whose node is
     * dead, the holder of `alarm-orphans`.
     */
    alarmOwnership() {
      const { lease } = get(JOB_LEASES.alarmOrphans);
      return {
        owns: (sessionNode: string | null) =>
          sessionNode === cluster.nodeId || ((sessionNode === null || !cluster.isAlive(sessionNode)) && lease.held),
      };
    },

    /**
     * Runs `task` until it succeeds, trying again with back-off while `still()` holds, until this node stops
     * (retry.ts): the recoveries from a lost node.
     */
    retrying(what: string, task: () => Promise<unknown>, still: () => boolean): Promise<boolean> {
      return retryWhile({ what, task, still, signal: stopping.signal, logger });
    },

    /** Resolves after a lease's time: true, or false at once when this node stops meanwhile. */
    afterLease(): Promise<boolean> {
      return sleep(cluster.leaseMs, undefined, { signal: stopping.signal, ref: false }).then(
        () => true,
        () => false,
      );
    },

    /** Ends the retries of `retrying` (stopping): none is tried again, none waits any longer. */
    stopRetries(): void {
      stopping.abort();
    },

    /** Gives up every lease (stopping; closing the cluster connection does it too). */
    async release(): Promise<void> {
      stopping.abort();
      await Promise.all([...leases.values()].map((e) => e.lease.release()));
      leases.clear();
    },
  };
}
export type ClusterJobs = ReturnType<typeof createClusterJobs>;
