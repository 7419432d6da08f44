/**
 * The history chart's time ranges and how each is fetched: raw points from the series endpoint for short
 * ranges, buckets from the aggregate endpoint for long ones (docs/http-api.md §3.6, §4.6).
 */
export type RangeChoice = 'hour' | 'day' | 'week' | 'custom';

export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;
/** The server's longest window for series and aggregate calls (docs/http-api.md §3.6). */
export const MAX_WINDOW = 30 * DAY;
/** Raw points are fetched for ranges up to this long. */
export const SERIES_MAX_SPAN = 6 * HOUR;
/** At most this many raw points are drawn (10 pages of the series endpoint's 1,000). */
export const MAX_POINTS = 10_000;
export const SERIES_PAGE = 1000;
/** Aggregated ranges aim at about this many buckets. */
export const TARGET_BUCKETS = 1000;

const NICE_INTERVALS = [
  1_000,
  5_000,
  10_000,
  30_000,
  60_000,
  120_000,
  300_000,
  600_000,
  900_000,
  1_800_000,
  HOUR,
  2 * HOUR,
  3 * HOUR,
  6 * HOUR,
  12 * HOUR,
  DAY,
];

export interface TimeRange {
  start: number;
  end: number;
}

/** The time window of a choice; `custom` takes the given range (start and end in ms). */
export function rangeOf(choice: RangeChoice, now: number, custom?: TimeRange): TimeRange {
  switch (choice) {
    case 'hour':
      return { start: now - HOUR, end: now };
    case 'day':
      return { start: now - DAY, end: now };
    case 'week':
      return { start: now - 7 * DAY, end: now };
    case 'custom':
      if (!custom) throw new Error('custom range needs start and end');
      return custom;
  }
}

/** Why a custom range cannot be fetched, or undefined when it can. */
export function rangeError(r: TimeRange): 'invalid' | 'order' | 'too_long' | undefined {
  if (!Number.isFinite(r.start) || !Number.isFinite(r.end)) return 'invalid';
  if (r.start >= r.end) return 'order';
  if (r.end - r.start > MAX_WINDOW) return 'too_long';
  return undefined;
}

export type Plan = { kind: 'series'; pages: number } | { kind: 'aggregate'; intervalMs: number };

/** The smallest round interval that splits `span` into at most TARGET_BUCKETS buckets. */
export function bucketInterval(span: number): number {
  const want = span / TARGET_BUCKETS;
  for (const i of NICE_INTERVALS) if (i >= want) return i;
  return Math.ceil(want / DAY) * DAY;
}

/** Series for short ranges, aggregate (avg per bucket) for long ones. */
export function planFor(r: TimeRange): Plan {
  const span = r.end - r.start;
  if (span <= SERIES_MAX_SPAN) return { kind: 'series', pages: MAX_POINTS / SERIES_PAGE };
  return { kind: 'aggregate', intervalMs: bucketInterval(span) };
}

/** The query string of the request(s) of a plan; series pages are numbered from 1. */
export function planQuery(deviceId: string, identifier: string, r: TimeRange, plan: Plan, page = 1): string {
  const d = encodeURIComponent(deviceId);
  const id = encodeURIComponent(identifier);
  const t = `start_time=${Math.floor(r.start)}&end_time=${Math.floor(r.end)}`;
  if (plan.kind === 'series')
    return `/api/v1/device/${d}/attribute/${id}/series?page=${page}&page_records=${SERIES_PAGE}&${t}`;
  return `/api/v1/device/${d}/attributes/aggregate?identifiers=${id}&fn=avg&interval=${plan.intervalMs}&${t}`;
}

/** Points as the chart wants them: oldest first, x in seconds, numeric y (non-numbers dropped). */
export function toChartData(points: readonly { ts: number; value: unknown }[]): [number[], number[]] {
  const sorted = points
    .filter((p) => typeof p.value === 'number' || typeof p.value === 'boolean')
    .slice()
    .sort((a, b) => a.ts - b.ts);
  return [
    sorted.map((p) => p.ts / 1000),
    sorted.map((p) => (typeof p.value === 'boolean' ? (p.value ? 1 : 0) : (p.value as number))),
  ];
}

/**
 * Whether a series fetch should give way to buckets after its first page: a full page whose oldest point
 * covers so little of the range that the whole range holds more than MAX_POINTS points.
 */
export function tooDense(r: TimeRange, firstPage: readonly { ts: number }[]): boolean {
  if (firstPage.length < SERIES_PAGE) return false;
  const oldest = Math.min(...firstPage.map((p) => p.ts));
  const covered = r.end - oldest;
  if (covered <= 0) return true;
  return (firstPage.length * (r.end - r.start)) / covered > MAX_POINTS;
}
