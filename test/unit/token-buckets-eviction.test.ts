import { describe, expect, it } from 'vitest';
import { createTokenBuckets } from '../../src/lib/token-buckets.ts';

/** src/lib/token-buckets.ts: making room for a new key never hands the keys being limited a new burst. */
describe('token buckets past maxKeys', () => {
  it('keeps the buckets of busy keys when every tracked key is busy: only the key idle longest is forgotten', () => {
    let now = 0;
    const b = createTokenBuckets({ rate: 0.01, burst: 2, maxKeys: 3, clock: () => now });
    for (const key of ['old', 'a', 'b']) {
      b.take(key);
      b.take(key);
      expect(b.take(key).ok).toBe(false);
      now += 10;
    }
    // 'old' is used again: 'a' is now the key idle longest.
    expect(b.take('old').ok).toBe(false);
    now += 10;
    expect(b.take('new').ok).toBe(true);
    expect(b.size).toBe(3);
    // The limited keys still recently used stay limited ...
    expect(b.take('old').ok).toBe(false);
    expect(b.take('b').ok).toBe(false);
    // ... and the one forgotten starts over like a key never seen (it takes the place of another).
    expect(b.take('a').ok).toBe(true);
    expect(b.size).toBe(3);
  });

  it('a stream of new keys cannot free a key that keeps being refused', () => {
    let now = 0;
    const b = createTokenBuckets({ rate: 0.001, burst: 1, maxKeys: 50, clock: () => now });
    b.take('attacker');
    for (let i = 0; i < 10_000; i++) {
      now += 1;
      b.take(`spoofed-${i}`);
      if (i % 10 === 0) expect(b.take('attacker').ok).toBe(false);
    }
    expect(b.size).toBe(50);
  });
});
