import { describe, expect, it } from 'vitest';
import { serviceSteps, startSteps, stopSteps } from '../../src/composition/lifecycle.ts';
import type { Services } from '../../src/composition/services.ts';

/**
 * The services' start and stop order (src/composition/lifecycle.ts), which main.ts and the test app share:
 * what the listeners delivered is flushed before what it feeds stops (data streams before ingest), and the
 * alarms, evaluating all of it, stop last; the alarm timers are rebuilt after the current values are recovered.
 */
function recordingServices(calls: string[], failing?: string) {
  const op = (name: string) => async () => {
    calls.push(name);
    if (name === failing) throw new Error(`${name} failed`);
  };
  return {
    alarms: { start: op('alarms.start'), stop: op('alarms.stop') },
    presence: { resetOnline: op('presence.resetOnline'), start: op('presence.start'), stop: op('presence.stop') },
    commands: { start: op('commands.start'), stop: op('commands.stop') },
    retention: { start: op('retention.start'), stop: op('retention.stop') },
    currentCache: {
      recover: op('currentCache.recover'),
      start: op('currentCache.start'),
      stop: op('currentCache.stop'),
    },
    ingest: { stop: op('ingest.stop') },
    dataStreams: { stop: op('dataStreams.stop') },
    historyStore: {
      detect: async () => (calls.push('historyStore.detect'), 'plain'),
      applyTimescalePolicies: async () => (calls.push('historyStore.policies'), { mode: 'plain' }),
    },
  } as unknown as Services;
}
const logger = { info: () => {}, warn: () => {}, child: () => logger };
const policies = { chunkHours: 24, compressAfterDays: 7, retentionDays: 365 };

describe('service lifecycle', () => {
  it('starts in order and stops in reverse, listeners’ consumers first and alarms last', async () => {
    const calls: string[] = [];
    const steps = serviceSteps(recordingServices(calls), { logger, historyPolicies: policies });
    await startSteps(steps);
    expect(calls).toEqual([
      'presence.resetOnline',
      'presence.start',
      'commands.start',
      'historyStore.detect',
      'historyStore.policies',
      'retention.start',
      'currentCache.recover',
      'currentCache.start',
      'alarms.start',
    ]);
    calls.length = 0;
    await stopSteps(steps);
    expect(calls).toEqual([
      'dataStreams.stop',
      'ingest.stop',
      'currentCache.stop',
      'retention.stop',
      'commands.stop',
      'presence.stop',
      'alarms.stop',
    ]);
  });

  it('runs every stop when one fails, and reports the failure', async () => {
    const calls: string[] = [];
    const steps = serviceSteps(recordingServices(calls, 'ingest.stop'), { logger });
    await expect(stopSteps(steps)).rejects.toThrow('ingest.stop failed');
    expect(calls).toContain('alarms.stop');
    const seen: string[] = [];
    calls.length = 0;
    await stopSteps(steps, (_err, step) => seen.push(step.name));
    expect(seen).toEqual(['ingest']);
    expect(calls).toHaveLength(7);
  });
});
