import { describe, expect, it, vi } from 'vitest';
import type { PresenceRow } from '../../src/db/repositories/presence.repository.ts';
import { createPresenceService } from '../../src/domain/devices/presence.service.ts';
import { createEventBus } from '../../src/domain/events/event-bus.ts';

const device = { deviceId: 'd1', projectId: 'p1', name: 'd', typeId: null, connType: '1', disabled: false };

function setup(apply: (rows: PresenceRow[]) => Promise<void>, clock: () => number = () => 1_000) {
  const written: string[][] = [];
  const errors: unknown[] = [];
  const presence = createPresenceService({
    repo: { apply, resetOnline: async () => {} },
    bus: createEventBus(),
    logger: { error: (o: unknown) => void errors.push(o) },
    clock,
    flushMs: 1_000,
    onOnlineWritten: (projects) => written.push(projects),
  });
  return { presence, written, errors };
}

describe('presence.settle (read-your-writes of online state)', () => {
  it('writes nothing for reports alone: they stay batched; a connect or disconnect is written before the read', async () => {
    const apply = vi.fn(async (_rows: PresenceRow[]) => {});
    const { presence, written } = setup(apply);
    presence.touch('d1', 'attributes', 2_000);
    await presence.settle();
    expect(apply).not.toHaveBeenCalled();
    // Pending times are still readable for the overlay.
    expect(presence.activity('d1')).toEqual({ attributes: 2_000 });

    presence.connected(device, 'mqtt');
    await presence.settle();
    expect(apply).toHaveBeenCalledTimes(1);
    expect(apply.mock.calls[0]![0]).toEqual([
      { deviceId: 'd1', online: true, activeTs: { attributes: 2_000, connect: 1_000 } },
    ]);
    expect(written).toEqual([['p1']]);
    expect(presence.activity('d1')).toBeUndefined();
    // Written: the next read costs nothing.
    await presence.settle();
    expect(apply).toHaveBeenCalledTimes(1);
  });

  it('a failed write does not fail the read; reads do not write again for flushMs (the timer retries), then one does', async () => {
    let fail = true;
    let now = 1_000;
    const apply = vi.fn(async () => {
      if (fail) throw new Error('database down');
    });
    const { presence, written, errors } = setup(apply, () => now);
    presence.disconnected(device, 'mqtt', 'disconnect');
    await expect(presence.settle()).resolves.toBeUndefined();
    expect(written).toEqual([]);
    // During the outage reads answer from the database without a write (and an error line) each.
    for (let i = 0; i < 10; i++) await presence.settle();
    expect(apply).toHaveBeenCalledTimes(1);
    expect(errors).toHaveLength(1);
    fail = false;
    now += 999;
    await presence.settle();
    expect(apply).toHaveBeenCalledTimes(1);
    now += 1;
    await presence.settle();
    expect(apply).toHaveBeenCalledTimes(2);
    expect(written).toEqual([['p1']]);
    // A write that works ends the back-off: the next connect is written by the next read.
    presence.connected(device, 'mqtt');
    await presence.settle();
    expect(apply).toHaveBeenCalledTimes(3);
  });

  it('a write that works (the timer) ends the back-off at once', async () => {
    let fail = true;
    const apply = vi.fn(async () => {
      if (fail) throw new Error('database down');
    });
    const { presence } = setup(apply);
    presence.connected(device, 'mqtt');
    await presence.settle();
    fail = false;
    await presence.flush();
    expect(apply).toHaveBeenCalledTimes(2);
    presence.disconnected(device, 'mqtt', 'disconnect');
    await presence.settle();
    expect(apply).toHaveBeenCalledTimes(3);
  });
});
