import { describe, expect, it, vi } from 'vitest';
import { createEventBus } from '../../src/domain/events/event-bus.ts';
import { createLiveEvents, type LiveMessage } from '../../src/domain/events/live-events.ts';

/**
 * A live event from another node that lacks the fields its kind needs (anyone on the NATS server can publish
 * one: docs/cluster.md §8) is dropped with a warning: it never throws into the caller nor rejects a promise
 * nobody handles — whether the device's name is cached or looked up — and the project's listeners go on
 * receiving well-formed events.
 */
describe('a malformed live event from another node', () => {
  it.each([
    ['looked up', false],
    ['cached', true],
  ])('is dropped with a warning, the device %s', async (_label, cached) => {
    const warn = vi.fn();
    const unhandled = vi.fn();
    process.on('unhandledRejection', unhandled);
    try {
      const live = createLiveEvents({
        bus: createEventBus(),
        deviceInfo: async () => ({ name: 'dev', viewToken: 'view' }),
        boundDeviceIds: async () => [],
        logger: { warn },
      });
      const got: LiveMessage[] = [];
      live.subscribe('p1', (m) => got.push(m));
      const ok = { projectId: 'p1', deviceId: 'd1', alarm: { id: 'a1', status: 1, level: 1, info: {}, ts: 1 } };
      if (cached) {
        live.deliverRemote('device.alarm', ok);
        await new Promise((r) => setTimeout(r, 10));
        got.length = 0;
      }
      // No `alarm`: building its message would read `alarm.id`.
      expect(() => live.deliverRemote('device.alarm', { projectId: 'p1', deviceId: 'd1' } as never)).not.toThrow();
      await new Promise((r) => setTimeout(r, 10));
      expect(got).toEqual([]);
      expect(warn).toHaveBeenCalled();
      live.deliverRemote('device.alarm', ok);
      await new Promise((r) => setTimeout(r, 10));
      expect(got.map((m) => m.kind)).toEqual(['alarm']);
      expect(unhandled).not.toHaveBeenCalled();
    } finally {
      process.off('unhandledRejection', unhandled);
    }
  });
});
