import { describe, expect, it } from 'vitest';
import { attachDevice, HeldCommands } from '../../mqtt-broker/core/device-session.ts';
import { createSessionRegistry } from '../../src/domain/delivery/sessions.ts';
import type { DeviceIdentity } from '../../src/domain/devices/device-identity.ts';

const identity = { deviceId: 'd1', projectId: 'p1' } as DeviceIdentity;

/** One device connection's life in the registry, as MQTT, TCP and gateway sub-devices share it. */
function setUp() {
  const sessions = createSessionRegistry();
  const events: string[] = [];
  const presence = {
    connected: (d: DeviceIdentity, transport: string) => void events.push(`online ${d.deviceId} ${transport}`),
    disconnected: (d: DeviceIdentity, transport: string, reason: string) =>
      void events.push(`offline ${d.deviceId} ${transport} ${reason}`),
    replaced: (deviceId: string) => void events.push(`replaced ${deviceId}`),
  };
  const closed: Array<[string, boolean]> = [];
  const open = (presenceAs?: string) =>
    attachDevice({ sessions, presence } as never, {
      identity,
      transport: 'mqtt',
      presenceAs,
      link: { send: async () => {}, close: (reason, kicked) => void closed.push([reason, kicked]) },
    });
  return { sessions, events, closed, open };
}

describe('device session lifecycle', () => {
  it('is online once attached and offline when the transport ends it (once)', () => {
    const { sessions, events, open } = setUp();
    const c = open();
    expect(sessions.get('d1')).toBe(c.session);
    c.end();
    c.end();
    expect(sessions.isOnline('d1')).toBe(false);
    expect(events).toEqual(['online d1 mqtt', 'offline d1 mqtt disconnect']);
  });

  it('a newer connection replaces the older: the older is closed, not kicked, and its end keeps the device online', () => {
    const { sessions, events, closed, open } = setUp();
    const older = open();
    const newer = open();
    expect(closed).toEqual([['replaced by a newer connection of the same device', false]]);
    expect(older.kicked).toBe(false);
    older.end();
    expect(sessions.get('d1')).toBe(newer.session);
    expect(events).toEqual(['online d1 mqtt', 'online d1 mqtt', 'replaced d1']);
  });

  it('a kicked session is closed as kicked, and its end reports it offline as kicked', () => {
    const { sessions, events, closed, open } = setUp();
    const c = open('gateway');
    sessions.kick('d1', 'token reset');
    expect(closed).toEqual([['token reset', true]]);
    expect(c.kicked).toBe(true);
    c.end('gateway disconnected');
    expect(events).toEqual(['online d1 gateway', 'offline d1 gateway kicked']);
  });

  it('holds commands up to its limit until released, then holds none', async () => {
    const held = new HeldCommands<number>(2, 'not subscribed');
    await held.hold(1);
    await held.hold(2);
    await expect(held.hold(3)).rejects.toThrow('not subscribed');
    expect(held.ready).toBe(false);
    expect(held.release()).toEqual([1, 2]);
    expect(held.ready).toBe(true);
    expect(held.release()).toEqual([]);
  });
});
