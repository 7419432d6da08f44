/**
 * Token buckets by key (a client address, usually): each key may take `burst` at once and `rate` a
 * second after that. A bucket that has filled up again is the same as no bucket, so past `maxKeys`
 * the full ones are forgotten first; the map never grows without bound.
 */
export interface TokenBucketsOptions {
  /** Tokens added per second. */
  rate: number;
  /** The most a bucket holds (and what a new key starts with). */
  burst: number;
  maxKeys?: number;
  clock?: () => number;
}

export type Take = { ok: true } | { ok: false; /** Until the next token, ms. */ retryMs: number };

export interface TokenBuckets {
  take(key: string): Take;
  /** Keys tracked now (for tests and stats). */
  readonly size: number;
}

const OK: Take = { ok: true };

export function createTokenBuckets({ rate, burst, maxKeys = 100_000, clock = Date.now }: TokenBucketsOptions): TokenBuckets {
  if (!(rate > 0) || !(burst >= 1)) throw new RangeError('token buckets need rate > 0 and burst >= 1');
  const buckets = new Map<string, { tokens: number; last: number }>();

  return {
    take(key) {
      const now = clock();
      let b = buckets.get(key);
      if (!b) {
        if (buckets.size >= maxKeys) {
          for (const [k, v] of buckets) if (v.tokens + ((now - v.last) / 1000) * rate >= burst) buckets.delete(k);
          // Still full: that many keys are busy at once; start over rather than grow.
          if (buckets.size >= maxKeys) buckets.clear();
        }
        b = { tokens: burst, last: now };
        buckets.set(key, b);
      }
      b.tokens = Math.min(burst, b.tokens + (Math.max(0, now - b.last) / 1000) * rate);
      b.last = now;
      if (b.tokens >= 1) {
        b.tokens -= 1;
        return OK;
      }
      return { ok: false, retryMs: Math.ceil(((1 - b.tokens) / rate) * 1000) };
    },
    get size() {
      return buckets.size;
    },
  };
}
