import { describe, expect, it } from 'vitest';
import type { DeviceAuthRepository } from '../../src/db/repositories/device-auth.repository.ts';
import { createDeviceAuthService } from '../../src/domain/devices/device-auth.service.ts';
import { createEventBus } from '../../src/domain/events/event-bus.ts';

const row = { deviceId: 'd1', projectId: 'p1', name: 'd', typeId: null, connType: '1', disabled: false };

function setup() {
  let queries = 0;
  let release: (() => void) | undefined;
  const repo: DeviceAuthRepository = {
    byCredentials: async (pk, token) => {
      queries++;
      if (token === 'slow' && queries === 1) await new Promise<void>((r) => (release = r));
      return pk === 'pk' && (token === 'tok' || token === 'slow') ? row : undefined;
    },
  };
  const bus = createEventBus();
  return { bus, auth: createDeviceAuthService({ repo, bus }), queries: () => queries, release: () => release?.() };
}

describe('device authentication cache', () => {
  it('answers a reconnect storm of one device with one query, and shares concurrent look-ups', async () => {
    const { auth, queries } = setup();
    const all = await Promise.all(Array.from({ length: 1000 }, () => auth.authenticate('pk', 'tok')));
    expect(all.every((id) => id?.deviceId === 'd1')).toBe(true);
    await auth.authenticate('pk', 'tok');
    expect(queries()).toBe(1);
  });

  it('remembers unknown credentials briefly, so bad logins cost no queries', async () => {
    const { auth, queries } = setup();
    for (let i = 0; i < 100; i++) expect(await auth.authenticate('pk', 'wrong')).toBeUndefined();
    expect(queries()).toBe(1);
  });

  it('forgets a revoked device at once, including a look-up that was in flight', async () => {
    const { auth, bus, queries } = setup();
    await auth.authenticate('pk', 'tok');
    bus.emit('device.credentials_revoked', { projectId: 'p1', deviceId: 'd1' });
    await auth.authenticate('pk', 'tok');
    expect(queries()).toBe(2);

    const s = setup();
    const inFlight = s.auth.authenticate('pk', 'slow');
    s.bus.emit('device.credentials_revoked', { projectId: 'p1', deviceId: 'd1' });
    s.release();
    await inFlight;
    await s.auth.authenticate('pk', 'slow');
    expect(s.queries()).toBe(2);
  });
});
