import { describe, expect, it } from 'vitest';
import { createRateLimiter } from '../../src/domain/delivery/rate-limiter.ts';
import { isTransientDbError } from '../../src/db/errors.ts';

describe('device and project rate limiter', () => {
  it('admits a burst of twice the rate, then refuses without taking, with the time to wait', () => {
    let now = 1_000_000;
    const limiter = createRateLimiter({ projectRate: 0, clock: () => now });
    let admitted = 0;
    for (let i = 0; i < 30; i++) if (limiter.admit('p', 'd', 10).ok) admitted++;
    expect(admitted).toBe(20);
    const refused = limiter.admit('p', 'd', 10);
    expect(refused).toMatchObject({ ok: false, by: 'device', retryMs: 100 });
    now += 100;
    expect(limiter.admit('p', 'd', 10)).toEqual({ ok: true, delayMs: 0 });
  });

  it('reserves into debt with growing delays, and refuses beyond the longest hold', () => {
    const now = 1_000_000;
    const limiter = createRateLimiter({ projectRate: 0, maxDelayMs: 1_000, clock: () => now });
    const delays: number[] = [];
    for (let i = 0; i < 40; i++) {
      const a = limiter.reserve('p', 'd', 10);
      if (!a.ok) break;
      delays.push(a.delayMs);
    }
    // 20 at once, then one every 100 ms for up to 1 s.
    expect(delays.slice(0, 20).every((d) => d === 0)).toBe(true);
    expect(delays.slice(20)).toEqual([100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]);
    expect(limiter.reserve('p', 'd', 10)).toMatchObject({ ok: false, by: 'device' });
  });

  it("holds one project's devices to the project budget, not another project's", () => {
    const now = 1_000_000;
    const limiter = createRateLimiter({ projectRate: 100, clock: () => now });
    let admitted = 0;
    for (let d = 0; d < 50; d++) for (let i = 0; i < 10; i++) if (limiter.admit('flood', `d${d}`, 50).ok) admitted++;
    expect(admitted).toBe(200);
    expect(limiter.admit('flood', 'd99', 50)).toMatchObject({ ok: false, by: 'project' });
    expect(limiter.admit('other', 'o1', 50).ok).toBe(true);
  });

  it('marks a device that keeps sending over its rate as a flood', () => {
    const now = 1_000_000;
    const limiter = createRateLimiter({ projectRate: 0, abuseFactor: 2, clock: () => now });
    for (let i = 0; i < 10; i++) limiter.admit('p', 'd', 5);
    const results = Array.from({ length: 10 }, () => limiter.admit('p', 'd', 5));
    expect(results.at(-1)).toMatchObject({ ok: false, flood: true });
    expect(results[0]).toMatchObject({ ok: false, flood: false });
  });
});

describe('database errors worth waiting for', () => {
  it.each([
    ['55000', 'database "x" is not currently accepting connections'],
    ['57P01', 'terminating connection due to administrator command'],
    ['57P03', 'the database system is starting up'],
    ['08006', 'connection failure'],
    ['40001', 'could not serialize access'],
    ['25006', 'cannot execute INSERT in a read-only transaction'],
  ])('%s is transient', (code, message) => {
    expect(isTransientDbError(Object.assign(new Error(message), { code }))).toBe(true);
    expect(isTransientDbError(new Error('query failed', { cause: Object.assign(new Error(message), { code }) }))).toBe(
      true,
    );
  });
  it.each([
    ['23505', 'duplicate key'],
    ['22P02', 'invalid input syntax'],
    ['42P01', 'relation does not exist'],
  ])('%s is not', (code, message) => {
    expect(isTransientDbError(Object.assign(new Error(message), { code }))).toBe(false);
  });
});

describe('a device bucket moving between nodes (docs/cluster.md §7)', () => {
  it('carries what is left: a device that spent its burst on one node has no fresh burst on the next', () => {
    let now = 1_000_000;
    const a = createRateLimiter({ projectRate: 0, clock: () => now });
    const b = createRateLimiter({ projectRate: 0, clock: () => now });
    for (let i = 0; i < 20; i++) expect(a.admit('p', 'd', 10).ok).toBe(true); // the burst: twice the rate
    expect(a.admit('p', 'd', 10).ok).toBe(false);
    const state = a.export('d');
    expect(state).toEqual({ tokens: 0, at: now });
    now += 100; // 0.1 s on the way: one token at 10/s
    b.adopt('d', state!, 10);
    expect(b.admit('p', 'd', 10).ok).toBe(true);
    expect(b.admit('p', 'd', 10).ok).toBe(false);
  });

  it('never gives more than the new node holds, and ignores a state from the future or a broken one', () => {
    let now = 1_000_000;
    const b = createRateLimiter({ projectRate: 0, clock: () => now });
    for (let i = 0; i < 20; i++) b.admit('p', 'd', 10);
    b.adopt('d', { tokens: 20, at: now }, 10);
    expect(b.admit('p', 'd', 10).ok).toBe(false);
    const c = createRateLimiter({ projectRate: 0, clock: () => now });
    c.adopt('d', { tokens: 0, at: now + 60_000 }, 10); // a skewed clock: no refill, no negative time
    expect(c.admit('p', 'd', 10).ok).toBe(false);
    // A hand-off claiming a huge debt is held to the debt a node allows (10 s at the rate): the device may
    // send again once that is paid, not never.
    c.adopt('y', { tokens: -1e300, at: now }, 10);
    now += 10_000 + 100;
    expect(c.admit('p', 'y', 10).ok).toBe(true);
    c.adopt('x', { tokens: Number.NaN, at: now }, 10);
    expect(c.admit('p', 'x', 10).ok).toBe(true);
    expect(c.export('unknown')).toBeUndefined();
  });
});
