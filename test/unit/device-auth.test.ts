import { describe, expect, it, vi } from 'vitest';
import type { DeviceAuthRepository } from '../../src/db/repositories/device-auth.repository.ts';
import { createDeviceAuthService } from '../../src/domain/devices/device-auth.service.ts';
import { createEventBus } from '../../src/domain/events/event-bus.ts';

const row = { deviceId: 'd1', projectId: 'p1', name: 'd', typeId: null, connType: '1', disabled: false };
/** The device's row as the repository finds it by a token of its ('tok' or 'slow'), with its project's key. */
const found = (token: string) =>
  token === 'tok' || token === 'slow' ? [{ ...row, accessToken: token, projectKey: 'pk' }] : [];

function setup({ maxBatch = 500, gatherMs = 0 } = {}) {
  let queries = 0;
  const batches: string[][] = [];
  let release: (() => void) | undefined;
  let started!: () => void;
  /** Resolves once the held query (the first with 'slow') has gone out. */
  const inFlight = new Promise<void>((r) => (started = r));
  let failNext = false;
  const repo: DeviceAuthRepository = {
    byTokens: async (tokens) => {
      queries++;
      batches.push([...tokens]);
      if (failNext) {
        failNext = false;
        throw new Error('database unavailable');
      }
      if (tokens.includes('slow') && queries === 1) {
        started();
        await new Promise<void>((r) => (release = r));
      }
      return tokens.flatMap(found);
    },
  };
  const bus = createEventBus();
  return {
    bus,
    auth: createDeviceAuthService({ repo, bus, maxBatch, gatherMs }),
    queries: () => queries,
    batches,
    inFlight,
    release: () => release?.(),
    failNext: () => void (failNext = true),
  };
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

    // Every cached login of the device goes, however many it has ('tok' and 'slow' are both d1's).
    const many = setup();
    for (const token of ['tok', 'slow', 'tok', 'slow'])
      expect((await many.auth.authenticate('pk', token))?.deviceId).toBe('d1');
    expect(many.queries()).toBe(2);
    many.bus.emit('device.credentials_revoked', { projectId: 'p1', deviceId: 'd1' });
    for (const token of ['tok', 'slow']) await many.auth.authenticate('pk', token);
    expect(many.queries()).toBe(4);

    // Revoked while its query is in flight: answered (the login's own revocation check refuses it), not cached.
    const s = setup();
    const inFlight = s.auth.authenticate('pk', 'slow');
    await s.inFlight;
    s.bus.emit('device.credentials_revoked', { projectId: 'p1', deviceId: 'd1' });
    s.release();
    await inFlight;
    await s.auth.authenticate('pk', 'slow');
    expect(s.queries()).toBe(2);

    // Revoked while it waits for its batch (the query has not gone out yet): not cached either.
    const t = setup();
    const waiting = t.auth.authenticate('pk', 'tok');
    expect(t.queries()).toBe(0);
    t.bus.emit('device.credentials_revoked', { projectId: 'p1', deviceId: 'd1' });
    await waiting;
    await t.auth.authenticate('pk', 'tok');
    expect(t.queries()).toBe(2);
  });
});

describe('device authentication, revoked on another node', () => {
  it('a token reset, device deletion or disabling, or a project deletion heard from the cluster drops the cached login', async () => {
    const remote = { remote: true } as const;
    const { auth, bus, queries } = setup();
    await auth.authenticate('pk', 'tok');
    bus.emit('device.credentials_revoked', { projectId: 'p1', deviceId: 'd1' }, remote);
    await auth.authenticate('pk', 'tok');
    expect(queries()).toBe(2);
    bus.emit('project.deleted', { projectId: 'p1' }, remote);
    const mark = auth.mark();
    await auth.authenticate('pk', 'tok');
    expect(queries()).toBe(3);
    bus.emit('device.credentials_revoked', { projectId: 'p1', deviceId: 'd1' }, remote);
    expect(auth.revokedSince({ deviceId: 'd1', projectId: 'p1' }, mark)).toBe(true);
  });
});

describe('device authentication in a reconnect storm', () => {
  it('looks up every credential asked for in one turn with one statement per batch, each answered as its own', async () => {
    const { auth, batches } = setup();
    const tokens = Array.from({ length: 999 }, (_, i) => (i === 7 ? 'tok' : `unknown${i}`));
    const answers = await Promise.all([
      ...tokens.map((token) => auth.authenticate('pk', token)),
      // The right token with another project's key is a bad login, though its row was found.
      auth.authenticate('other-pk', 'slow'),
    ]);
    expect(batches.map((b) => b.length)).toEqual([500, 500]);
    expect(answers.filter(Boolean)).toHaveLength(1);
    expect(answers[7]?.deviceId).toBe('d1');
    expect(answers[999]).toBeUndefined();
    // The next turn is the next batch.
    await auth.authenticate('pk', 'unknown-next');
    expect(batches.map((b) => b.length)).toEqual([500, 500, 1]);
  });

  it('asks one batch at a time: the look-ups of several turns while one is out go out together when it returns', async () => {
    const { auth, batches, inFlight, release } = setup();
    const first = auth.authenticate('pk', 'slow');
    await inFlight;
    const later: Promise<unknown>[] = [];
    for (let turn = 0; turn < 5; turn++) {
      later.push(auth.authenticate('pk', `unknown${turn}`));
      await new Promise((r) => setImmediate(r));
    }
    later.push(auth.authenticate('pk', 'tok'));
    expect(batches).toEqual([['slow']]);
    release();
    expect((await first)?.deviceId).toBe('d1');
    const answers = await Promise.all(later);
    expect(batches).toEqual([['slow'], ['unknown0', 'unknown1', 'unknown2', 'unknown3', 'unknown4', 'tok']]);
    expect(answers.map((a) => (a as { deviceId?: string } | undefined)?.deviceId)).toEqual([
      ...Array(5).fill(undefined),
      'd1',
    ]);
  });

  it('in a storm, the next batch waits to fill (going at once when full); a lone login does not wait', async () => {
    // A gathering time no test waits for: batches below go out only because they are full, or not delayed.
    const { auth, batches, inFlight, release } = setup({ maxBatch: 3, gatherMs: 60_000 });
    const storm = [auth.authenticate('pk', 'slow'), auth.authenticate('pk', 'unknown0')];
    await inFlight;
    release();
    await Promise.all(storm);
    // That batch held two logins: the next gathers over several turns of the event loop.
    const later: Promise<unknown>[] = [];
    for (let turn = 1; turn <= 2; turn++) {
      later.push(auth.authenticate('pk', `unknown${turn}`));
      await new Promise((r) => setImmediate(r));
    }
    expect(batches).toEqual([['slow', 'unknown0']]);
    later.push(auth.authenticate('pk', 'tok'));
    const answers = await Promise.all(later);
    expect(batches).toEqual([
      ['slow', 'unknown0'],
      ['unknown1', 'unknown2', 'tok'],
    ]);
    expect(answers.map((a) => (a as { deviceId?: string } | undefined)?.deviceId)).toEqual([
      undefined,
      undefined,
      'd1',
    ]);
    // That one was full, not lone: what comes next still gathers, and a full batch still goes at once.
    await Promise.all(['unknown3', 'unknown4', 'unknown5'].map((t) => auth.authenticate('pk', t)));
    expect(batches).toHaveLength(3);

    // A quiet server: a login alone goes out at the next turn, and so does the one after it.
    const quiet = setup({ maxBatch: 3, gatherMs: 60_000 });
    expect(await quiet.auth.authenticate('pk', 'unknown0')).toBeUndefined();
    expect((await quiet.auth.authenticate('pk', 'tok'))?.deviceId).toBe('d1');
    expect(quiet.batches).toEqual([['unknown0'], ['tok']]);
  });

  it('in a storm, a batch that does not fill goes out when its gathering time is up', async () => {
    const { auth, batches, inFlight, release } = setup({ maxBatch: 500, gatherMs: 5 });
    const storm = [auth.authenticate('pk', 'slow'), auth.authenticate('pk', 'unknown0')];
    await inFlight;
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      release();
      await Promise.all(storm);
      const later = [auth.authenticate('pk', 'unknown1'), auth.authenticate('pk', 'tok')];
      await new Promise((r) => setImmediate(r));
      expect(batches).toHaveLength(1);
      vi.advanceTimersByTime(4);
      expect(batches).toHaveLength(1);
      vi.advanceTimersByTime(1);
      expect(batches).toEqual([
        ['slow', 'unknown0'],
        ['unknown1', 'tok'],
      ]);
      expect((await later[1])?.deviceId).toBe('d1');
    } finally {
      vi.useRealTimers();
    }
  });

  it('a failed batch fails each of its logins and caches none of them', async () => {
    const { auth, queries, failNext } = setup();
    failNext();
    const failed = await Promise.allSettled([auth.authenticate('pk', 'tok'), auth.authenticate('pk', 'slow')]);
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(queries()).toBe(1);
    expect((await auth.authenticate('pk', 'tok'))?.deviceId).toBe('d1');
    expect(queries()).toBe(2);
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
    const { auth, bus, queries, release, inFlight: held } = setup();
    // The first query is held until release(): in flight while the project is deleted.
    const inFlight = auth.authenticate('pk', 'slow');
    await held;
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
