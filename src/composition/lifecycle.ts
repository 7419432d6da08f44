import type { Logger } from 'pino';
import { JOB_LEASES } from '../cluster/jobs.ts';
import type { Services } from './services.ts';

/** One part of the server that starts and stops with it. */
export interface LifecycleStep {
  name: string;
  start?: () => Promise<void> | void;
  stop?: () => Promise<void>;
}

export interface LifecycleOptions {
  /** Each step logs through its own child (`component`: the step's name). */
  logger: { child(bindings: { component: string }): Pick<Logger, 'info' | 'warn'> };
  /** TimescaleDB policies (settings.ts historyPolicies); unset = the history store is not inspected at start. */
  historyPolicies?: { chunkHours: number; compressAfterDays: number; retentionDays: number };
}

/**
 * The services' start and stop, in ONE order (main.ts and test/helpers/app.ts both use it): started top to
 * bottom, stopped bottom to top. main.ts adds the device listeners and HTTP servers after these (startStep),
 * so they stop first and what they delivered is flushed: data-stream messages (and the attribute reports of
 * mapped JSON streams) are written before ingest stops, and nothing acknowledged is lost.
 */
export function serviceSteps(services: Services, { logger, historyPolicies }: LifecycleOptions): LifecycleStep[] {
  const historyLog = logger.child({ component: 'history-store' });
  return [
    // Last to stop: evaluations of what the listeners delivered, and running webhook deliveries.
    { name: 'alarms', stop: () => services.alarms.stop() },
    {
      name: 'presence',
      // In cluster mode only this node's own sessions are reset, and the reaper starts (docs/cluster.md §3).
      start: async () => {
        await services.presence.resetOnline();
        services.presence.start();
        services.clusterPresence?.start();
      },
      stop: async () => {
        await services.clusterPresence?.stop();
        await services.presence.stop();
      },
    },
    { name: 'commands', start: () => services.commands.start(), stop: () => services.commands.stop() },
    {
      name: 'history store',
      start: async () => {
        if (!historyPolicies) return;
        historyLog.info({ history: await services.historyStore.detect() }, 'attribute history store');
        const apply = async () => {
          const policies = await services.historyStore.applyTimescalePolicies(historyPolicies);
          if (policies.mode === 'timescale' && !policies.policies) {
            historyLog.warn(
              { license: policies.license },
              "TimescaleDB without the community license: no compression; history retention is the server's own job",
            );
          }
        };
        // Cluster mode: the policies are removed and added again, so one node at a time does it: the holder
        // of the lease, when it takes it (docs/cluster.md §4).
        if (!services.clusterJobs) return apply();
        services.clusterJobs.onTaken(JOB_LEASES.historyPolicies, () => {
          apply().catch((err: unknown) => historyLog.warn({ err }, 'TimescaleDB policies not applied'));
        });
      },
    },
    { name: 'retention', start: () => services.retention.start(), stop: () => services.retention.stop() },
    {
      name: 'current cache',
      start: async () => {
        await services.currentCache.recover();
        services.currentCache.start();
      },
      stop: () => services.currentCache.stop(),
    },
    { name: 'ingest', stop: () => services.ingest.stop() },
    { name: 'data streams', stop: () => services.dataStreams.stop() },
    // Active alarms and the timers of connection and silence rules, rebuilt before devices connect.
    { name: 'alarm timers', start: () => services.alarms.start() },
    // First to stop: the recoveries from lost nodes still being tried (cluster/retry.ts) end.
    { name: 'cluster retries', stop: async () => services.clusterJobs?.stopRetries() },
  ];
}

/** Runs the steps' starts in order. */
export async function startSteps(steps: readonly LifecycleStep[]): Promise<void> {
  for (const step of steps) await step.start?.();
}

/**
 * Starts one more step and adds it to `steps`, so it stops before those already there; a step whose start
 * throws is not added (its own start cleans up, or a step added before it owns what it opened).
 */
export async function startStep(steps: LifecycleStep[], step: LifecycleStep): Promise<void> {
  await step.start?.();
  steps.push(step);
}

/**
 * Runs the steps' stops in reverse order; a failing stop does not keep the others from running. Without
 * `onError` the first failure is thrown once all have run.
 */
export async function stopSteps(
  steps: readonly LifecycleStep[],
  onError?: (err: unknown, step: LifecycleStep) => void,
): Promise<void> {
  let failed: { err: unknown } | undefined;
  for (const step of [...steps].reverse()) {
    if (!step.stop) continue;
    try {
      await step.stop();
    } catch (err) {
      if (onError) onError(err, step);
      else failed ??= { err };
    }
  }
  if (failed) throw failed.err;
}
