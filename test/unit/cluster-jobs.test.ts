import { describe, expect, it } from 'vitest';
import type { Lease } from '../../src/cluster/cluster.ts';
import { createClusterJobs, JOB_LEASES } from '../../src/cluster/jobs.ts';
import { serviceSteps, startSteps } from '../../src/composition/lifecycle.ts';
import type { Services } from '../../src/composition/services.ts';
import { createCommandSweeper } from '../../src/domain/commands/sweeper.ts';
import { createRetention } from '../../src/domain/telemetry/retention.ts';
import type { HistoryRepository } from '../../src/db/repositories/history.repository.ts';

/**
 * Jobs that run once in a cluster (docs/cluster.md §4): each runs on the holder of its lease; the alarm
 * timers of a device on the node named by its session node, orphans on the holder of `alarm-orphans`.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A cluster whose leases the test hands out, with nodes `a` (this one) and `b` alive. */
function fakeCluster() {
  const leases = new Map<string, { held: boolean; onChange?: ((held: boolean) => void) | undefined }>();
  const alive = new Set(['a', 'b']);
  const lost: Array<(n: string) => void> = [];
  const cluster = {
    nodeId: 'a',
    leaseMs: 10_000,
    isAlive: (n: string) => alive.has(n),
    onNodeLost: (l: (n: string) => void) => {
      lost.push(l);
      return () => {};
    },
    lease(name: string, onChange?: (held: boolean) => void): Lease {
      const state = { held: false, onChange };
      leases.set(name, state);
      return {
        name,
        get held() {
          return state.held;
        },
        release: async () => {
          state.held = false;
        },
      };
    },
  };
  const give = (name: string, held: boolean) => {
    const l = leases.get(name)!;
    l.held = held;
    l.onChange?.(held);
  };
  return { cluster, alive, leases, give, lose: (n: string) => lost.forEach((l) => l(n)) };
}

describe('cluster jobs', () => {
  it('run on the lease holder: runs() follows the lease, onTaken fires on taking it (or at once when held)', () => {
    const f = fakeCluster();
    const jobs = createClusterJobs({ cluster: f.cluster, logger: { error: () => {}, warn: () => {} } });
    const runs = jobs.runs(JOB_LEASES.retention);
    expect(runs()).toBe(false);
    const taken: string[] = [];
    jobs.onTaken(JOB_LEASES.retention, () => taken.push('retention'));
    f.give(JOB_LEASES.retention, true);
    expect(runs()).toBe(true);
    expect(taken).toEqual(['retention']);
    f.give(JOB_LEASES.retention, false);
    expect(runs()).toBe(false);
    // Registered while held: runs at once.
    f.give(JOB_LEASES.retention, true);
    jobs.onTaken(JOB_LEASES.retention, () => taken.push('late'));
    expect(taken).toEqual(['retention', 'retention', 'late']);
  });

  it("give a device's alarm timers to its session node; orphans to the holder of alarm-orphans", () => {
    const f = fakeCluster();
    const jobs = createClusterJobs({ cluster: f.cluster, logger: { error: () => {}, warn: () => {} } });
    const { owns } = jobs.alarmOwnership();
    expect([owns('a'), owns('b'), owns(null), owns('dead')]).toEqual([true, false, false, false]);
    f.give(JOB_LEASES.alarmOrphans, true);
    expect([owns('a'), owns('b'), owns(null), owns('dead')]).toEqual([true, false, true, true]);
    f.alive.delete('b'); // b died
    expect(owns('b')).toBe(true);
  });

  it('the command sweeper sweeps only while this node runs it', async () => {
    let held = false;
    let sweeps = 0;
    const sweeper = createCommandSweeper({
      repo: {
        timeoutDue: async () => {
          sweeps++;
          return [];
        },
        expireDue: async () => [],
        failInterrupted: async () => 0,
      },
      clock: Date.now,
      logger: { error: () => {} },
      sweepMs: 10,
      onFinal: () => {},
      runs: () => held,
    });
    sweeper.start();
    try {
      await sleep(80);
      expect(sweeps).toBe(0);
      held = true;
      await sleep(80);
      expect(sweeps).toBeGreaterThan(0);
    } finally {
      sweeper.stop();
      await sweeper.settled();
    }
  });

  it('retention passes run only while this node runs them', async () => {
    let held = false;
    let passes = 0;
    const history = {
      dayOf: () => 0,
      ensurePartitions: async () => {
        passes++;
      },
      dropBefore: async () => 0,
      deleteProjectBefore: async () => {},
      deleteDefaultProjectsBefore: async () => {},
      pruneCommits: async () => {},
    } as unknown as HistoryRepository;
    const retention = createRetention({
      history,
      messages: { deleteProjectBefore: async () => {}, deleteDefaultProjectsBefore: async () => {} },
      settings: { retentionOverrides: async () => [] },
      defaultDays: 30,
      runs: () => held,
    });
    retention.start(0);
    await sleep(50);
    expect(passes).toBe(0);
    await retention.stop();
    held = true;
    retention.start(0);
    await sleep(50);
    await retention.stop();
    expect(passes).toBe(1);
  });

  it('TimescaleDB policies are applied by the holder of history-policies, when it takes the lease', async () => {
    const f = fakeCluster();
    const clusterJobs = createClusterJobs({ cluster: f.cluster, logger: { error: () => {}, warn: () => {} } });
    let applied = 0;
    const noop = async () => {};
    const services = {
      clusterJobs,
      alarms: { start: noop, stop: noop },
      presence: { resetOnline: noop, start: () => {}, stop: noop },
      commands: { start: () => {}, stop: noop },
      retention: { start: () => {}, stop: noop },
      currentCache: { recover: noop, start: () => {}, stop: noop },
      ingest: { stop: noop },
      dataStreams: { stop: noop },
      historyStore: {
        detect: async () => 'timescale',
        applyTimescalePolicies: async () => {
          applied++;
          return { mode: 'timescale', policies: true };
        },
      },
    } as unknown as Services;
    const logger = { info: () => {}, warn: () => {}, child: () => logger };
    const policies = { chunkHours: 24, compressAfterDays: 7, retentionDays: 365 };
    await startSteps(serviceSteps(services, { logger, historyPolicies: policies }));
    expect(applied).toBe(0); // another node holds the lease
    f.give(JOB_LEASES.historyPolicies, true);
    await sleep(10);
    expect(applied).toBe(1);
  });
});
