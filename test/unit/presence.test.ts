import { describe, expect, it, vi } from 'vitest';
import type { PresenceRow } from '../../src/db/repositories/presence.repository.ts';
import { createPresenceService } from '../../src/domain/devices/presence.service.ts';
import { createEventBus } from '../../src/domain/events/event-bus.ts';

const device = { deviceId: 'd1', projectId: 'p1', name: 'd', typeId: null, connType: '1', disabled: false };

function setup(apply: (rows: PresenceRow[]) => Promise<void>) {
  const bus = createEventBus();
  let now = 1_000;
  const presence = createPresenceService({
    repo: { apply, resetOnline: async () => {} },
    bus,
    logger: { error: () => {} },
    clock: () => now,
  });
  return { bus, presence, advance: (ms: number) => (now += ms) };
}

describe('presence', () => {
  it('batches many messages of many devices into one write with the latest time per kind', async () => {
    const apply = vi.fn(async (_rows: PresenceRow[]) => {});
    const { presence } = setup(apply);
    presence.connected(device, 'mqtt');
    for (let i = 0; i < 100; i++) presence.touch('d1', 'attributes', 2_000 + i);
    presence.touch('d2', 'event', 5_000);
    await presence.flush();
    expect(apply).toHaveBeenCalledTimes(1);
    expect(apply.mock.calls[0]![0]).toEqual([
      { deviceId: 'd1', online: true, activeTs: { connect: 1_000, attributes: 2_099 } },
      { deviceId: 'd2', activeTs: { event: 5_000 } },
    ]);
    await presence.flush();
    expect(apply).toHaveBeenCalledTimes(1);
  });

  it('publishes online and offline as domain events', () => {
    const { bus, presence } = setup(async () => {});
    const seen: string[] = [];
    bus.on('device.online', (e) => seen.push(`online ${e.deviceId} ${e.transport}`));
    bus.on('device.offline', (e) => seen.push(`offline ${e.deviceId} ${e.reason}`));
    presence.connected(device, 'tcp');
    presence.disconnected(device, 'tcp', 'keepalive');
    expect(seen).toEqual(['online d1 tcp', 'offline d1 keepalive']);
  });

  it('keeps a failed batch and writes it with the next one, newer values winning', async () => {
    let fail = true;
    const written: PresenceRow[][] = [];
    const { presence } = setup(async (rows) => {
      if (fail) throw new Error('database down');
      written.push(rows);
    });
    presence.connected(device, 'mqtt');
    presence.touch('d1', 'attributes', 3_000);
    await expect(presence.flush()).rejects.toThrow('database down');
    presence.touch('d1', 'attributes', 4_000);
    fail = false;
    await presence.flush();
    expect(written).toEqual([[{ deviceId: 'd1', online: true, activeTs: { connect: 1_000, attributes: 4_000 } }]]);
  });
});
