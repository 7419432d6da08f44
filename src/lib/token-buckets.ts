/**
 * Token buckets by key (a client address, a project id): each key may take `burst` at once and `rate` a
 * second after that. A bucket that has filled up again is the same as no bucket, so past `maxKeys`
 * the full ones are forgotten first, then the key idle longest; the map never grows without bound.
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
/** Keys, idle longest first, looked at for full buckets when a new key needs room. */
const EVICTION_LOOK = 64;

export function createTokenBuckets({
  rate,
  burst,
  maxKeys = 100_000,
  clock = Date.now,
}: TokenBucketsOptions): TokenBuckets {
  if (!(rate > 0) || !(burst >= 1)) throw new RangeError('token buckets need rate > 0 and burst >= 1');
  const buckets = new Map<string, { tokens: number; last: number }>();

  /**
   * Room for one more key. Forgetting everything would hand every key, the ones being refused right now included, a
   * new burst at once, and exactly when many keys are busy (requests from many addresses): the limit would vanish
   * under attack. So only buckets that add nothing are dropped: full ones (a new bucket starts full), looked for among
   * the keys idle longest (a bounded look, so a crowded map costs no more per request), and when none is full, the
   * one key idle longest; that key gets back at most its own allowance, no more than a key never seen before.
   */
  function evict(now: number) {
    let looked = 0;
    for (const [k, v] of buckets) {
      if (++looked > EVICTION_LOOK) break;
      if (v.tokens + ((now - v.last) / 1000) * rate >= burst) buckets.delete(k);
    }
    if (buckets.size >= maxKeys) buckets.delete(buckets.keys().next().value as string);
  }

  return {
    take(key) {
      const now = clock();
      let b = buckets.get(key);
      if (b) {
        // Map order is least recently used first: move the key to the end.
        buckets.delete(key);
        buckets.set(key, b);
      } else {
        if (buckets.size >= maxKeys) evict(now);
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
