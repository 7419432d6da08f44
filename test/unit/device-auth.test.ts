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

describe('device authentication input', () => {
  it('refuses credentials that cannot have been issued (NUL, control, non-ASCII) without a query', async () => {
    const { auth, queries } = setup();
    for (const [pk, token] of [
      ['pk', 'tok\u0000'],
      ['p\u0000k', 'tok'],
      ['pk', 'tök'],
      ['pk', 'to k'],
      ['', 'tok'],
    ]) {
      expect(await auth.authenticate(pk!, token!)).toBeUndefined();
    }
    expect(queries()).toBe(0);
    expect((await auth.authenticate('pk', 'tok'))?.deviceId).toBe('d1');
  });
});

// A project's deletion drops its cached logins, those in flight included.
describe('device authentication after a project is deleted', () => {
  it('does not answer from the cache, and does not cache a look-up that was in flight', async () => {
    const { auth, bus, queries, release } = setup();
    // The first query is held until release(): in flight while the project is deleted.
    const inFlight = auth.authenticate('pk', 'slow');
    bus.emit('project.deleted', { projectId: 'p1' });
    release();
    await inFlight;
    await auth.authenticate('pk', 'slow');
    expect(queries()).toBe(2);
    // A cached login of the project is dropped too.
    await auth.authenticate('pk', 'tok');
    bus.emit('project.deleted', { projectId: 'p1' });
    await auth.authenticate('pk', 'tok');
    expect(queries()).toBe(4);
  });
});
