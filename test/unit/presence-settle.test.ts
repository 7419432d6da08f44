import { describe, expect, it, vi } from 'vitest';
import type { PresenceRow } from '../../src/db/repositories/presence.repository.ts';
import { createPresenceService } from '../../src/domain/devices/presence.service.ts';
import { createEventBus } from '../../src/domain/events/event-bus.ts';

const device = { deviceId: 'd1', projectId: 'p1', name: 'd', typeId: null, connType: '1', disabled: false };

function setup(apply: (rows: PresenceRow[]) => Promise<void>) {
  const written: string[][] = [];
  const presence = createPresenceService({
    repo: { apply, resetOnline: async () => {} },
    bus: createEventBus(),
    logger: { error: () => {} },
    clock: () => 1_000,
    onOnlineWritten: (projects) => written.push(projects),
  });
  return { presence, written };
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
    expect(apply.mock.calls[0]![0]).toEqual([{ deviceId: 'd1', online: true, activeTs: { attributes: 2_000, connect: 1_000 } }]);
    expect(written).toEqual([['p1']]);
    expect(presence.activity('d1')).toBeUndefined();
    // Written: the next read costs nothing.
    await presence.settle();
    expect(apply).toHaveBeenCalledTimes(1);
  });

  it('a failed write does not fail the read, and the next read tries again', async () => {
    let fail = true;
    const apply = vi.fn(async () => {
      if (fail) throw new Error('database down');
    });
    const { presence, written } = setup(apply);
    presence.disconnected(device, 'mqtt', 'disconnect');
    await expect(presence.settle()).resolves.toBeUndefined();
    expect(written).toEqual([]);
    fail = false;
    await presence.settle();
    expect(apply).toHaveBeenCalledTimes(2);
    expect(written).toEqual([['p1']]);
  });
});
