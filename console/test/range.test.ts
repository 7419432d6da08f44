import { describe, expect, it } from 'vitest';
import {
  bucketInterval,
  DAY,
  HOUR,
  MAX_WINDOW,
  planFor,
  planQuery,
  rangeError,
  rangeOf,
  TARGET_BUCKETS,
  toChartData,
  tooDense,
} from '../src/range.ts';

const now = Date.now();

describe('history ranges', () => {
  it('last hour, day and week end now; custom takes the given range', () => {
    expect(rangeOf('hour', now)).toEqual({ start: now - HOUR, end: now });
    expect(rangeOf('day', now)).toEqual({ start: now - DAY, end: now });
    expect(rangeOf('week', now)).toEqual({ start: now - 7 * DAY, end: now });
    expect(rangeOf('custom', now, { start: now - 5, end: now - 1 })).toEqual({ start: now - 5, end: now - 1 });
    expect(() => rangeOf('custom', now)).toThrow();
  });

  it('refuses a custom range that is empty, reversed or longer than the server allows (30 days)', () => {
    expect(rangeError({ start: NaN, end: now })).toBe('invalid');
    expect(rangeError({ start: now, end: now })).toBe('order');
    expect(rangeError({ start: now, end: now - 1 })).toBe('order');
    expect(rangeError({ start: now - MAX_WINDOW - 1, end: now })).toBe('too_long');
    expect(rangeError({ start: now - MAX_WINDOW, end: now })).toBeUndefined();
  });

  it('fetches raw points (series, up to 10 pages of 1000) for the last hour, buckets (aggregate) for a day or a week', () => {
    expect(planFor(rangeOf('hour', now))).toEqual({ kind: 'series', pages: 10 });
    expect(planFor({ start: now - 6 * HOUR, end: now }).kind).toBe('series');
    expect(planFor(rangeOf('day', now))).toEqual({ kind: 'aggregate', intervalMs: 120_000 });
    expect(planFor(rangeOf('week', now))).toEqual({ kind: 'aggregate', intervalMs: 900_000 });
    expect(planFor({ start: now - 30 * DAY, end: now })).toEqual({ kind: 'aggregate', intervalMs: HOUR });
  });

  it('picks round bucket intervals giving at most about a thousand buckets, never under a second', () => {
    for (const span of [1, 1000, 7 * HOUR, DAY, 7 * DAY, 30 * DAY, 400 * DAY]) {
      const i = bucketInterval(span);
      expect(i).toBeGreaterThanOrEqual(1000);
      expect(span / i).toBeLessThanOrEqual(TARGET_BUCKETS);
    }
  });

  it('builds the series and aggregate queries with whole-ms times and escaped ids', () => {
    const r = { start: now - HOUR + 0.5, end: now + 0.5 };
    expect(planQuery('d/1', 'temp', r, { kind: 'series', pages: 10 }, 3)).toBe(
      `/api/v1/device/d%2F1/attribute/temp/series?page=3&page_records=1000&start_time=${now - HOUR}&end_time=${now}`,
    );
    expect(planQuery('d1', 'temp', r, { kind: 'aggregate', intervalMs: 120_000 })).toBe(
      `/api/v1/device/d1/attributes/aggregate?identifiers=temp&fn=avg&interval=120000&start_time=${now - HOUR}&end_time=${now}`,
    );
  });

  it('turns newest-first points into oldest-first chart columns in seconds, booleans as 0/1, other values dropped', () => {
    const pts = [
      { ts: now, value: 3 },
      { ts: now - 2000, value: true },
      { ts: now - 1000, value: 'text' },
      { ts: now - 3000, value: 1.5 },
    ];
    expect(toChartData(pts)).toEqual([
      [(now - 3000) / 1000, (now - 2000) / 1000, now / 1000],
      [1.5, 1, 3],
    ]);
  });
});

describe('dense ranges', () => {
  const r = { start: now - HOUR, end: now };
  const page = (n: number, stepMs: number) => Array.from({ length: n }, (_, i) => ({ ts: now - i * stepMs }));

  it('keeps raw points while the range holds at most 10,000 of them', () => {
    expect(tooDense(r, page(999, 10))).toBe(false); // not a full page: that is all there is
    expect(tooDense(r, page(1000, 3600))).toBe(false); // 1000 points cover the hour
    expect(tooDense(r, page(1000, 361))).toBe(false); // 1000 points cover a tenth: under 10,000 in all
  });

  it('switches to buckets when the first full page covers less than a tenth of the range', () => {
    expect(tooDense(r, page(1000, 300))).toBe(true); // ~12,000 in the hour
    expect(tooDense(r, page(1000, 0))).toBe(true); // all at the same instant
  });
});
