import { describe, expect, it } from 'vitest';
import { createTokenBuckets } from '../../src/lib/token-buckets.ts';

describe('token buckets by key', () => {
  it('gives a new key its burst, then the rate, and says how long until the next token', () => {
    let now = 1_000_000;
    const b = createTokenBuckets({ rate: 4, burst: 3, clock: () => now });
    expect([b.take('a'), b.take('a'), b.take('a')].every((t) => t.ok)).toBe(true);
    expect(b.take('a')).toEqual({ ok: false, retryMs: 250 });
    // Another key has its own burst.
    expect(b.take('b').ok).toBe(true);
    now += 100;
    expect(b.take('a')).toEqual({ ok: false, retryMs: 150 });
    now += 150;
    expect(b.take('a').ok).toBe(true);
    expect(b.take('a').ok).toBe(false);
    // Refills up to the burst, not beyond.
    now += 60_000;
    for (let i = 0; i < 3; i++) expect(b.take('a').ok).toBe(true);
    expect(b.take('a').ok).toBe(false);
  });

  it('forgets full buckets first when it tracks too many keys', () => {
    let now = 0;
    const b = createTokenBuckets({ rate: 1, burst: 2, maxKeys: 3, clock: () => now });
    b.take('busy');
    b.take('busy');
    b.take('x');
    b.take('y');
    now += 1_500; // x and y are full again; busy has 1.5 of 2
    b.take('z');
    expect(b.size).toBe(2);
    expect(b.take('busy').ok).toBe(true);
    expect(b.take('busy').ok).toBe(false);
  });

  it('refuses settings that would never admit anything', () => {
    expect(() => createTokenBuckets({ rate: 0, burst: 1 })).toThrow(RangeError);
    expect(() => createTokenBuckets({ rate: 1, burst: 0 })).toThrow(RangeError);
  });
});
