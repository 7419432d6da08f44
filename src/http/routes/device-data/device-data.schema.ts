import { z } from 'zod';
import { AGGREGATES } from '../../../db/repositories/history.repository.ts';
import { Id, pagingQuery } from '../common.schema.ts';
import { ATTRIBUTE_IDENTIFIER } from '../../../domain/telemetry/current-values.service.ts';
import { DAY_MS } from '../../../lib/time.ts';

const Identifier = z.string().regex(ATTRIBUTE_IDENTIFIER, 'must match ^[A-Za-z_][A-Za-z0-9_]{0,63}$');
/** A time in ms; a fractional part (clients sending `time.time() * 1000`) is floored. */
const Ms = z.coerce.number().min(0).max(8_640_000_000_000_000).transform(Math.floor);
const range = { start_time: Ms.optional(), end_time: Ms.optional() };
const identifierList = z
  .string()
  .max(4096)
  .transform((s) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
  )
  .pipe(z.array(Identifier).min(1, 'give at least one identifier').max(20));

export const DeviceIdentifierParams = z.object({ id: Id, identifier: Identifier });

export const AttributeItem = z.object({
  identifier: z.string(),
  value: z.unknown(),
  attr_type: z.string(),
  data_type: z.string(),
  ts: z.number(),
  model: z.object({
    name: z.string(),
    attr_type: z.string(),
    data_type: z.string(),
    data_options: z.record(z.string(), z.unknown()),
    unit: z.string().optional(),
  }),
});
export const AttributeList = z.array(AttributeItem);

/** `page_records` 1–1000: the vendor document says 100, its own export tool asks for 500. */
export const SeriesQuery = pagingQuery(1000).extend(range);
export const SeriesPoint = z.object({
  ts: z.number(),
  timestamp: z.string(),
  name: z.string(),
  value: z.unknown(),
  type: z.string(),
});
export const Series = z.array(SeriesPoint);

export const RemoveAttributesBody = z.object({
  keys: z.array(Identifier).min(1).max(200),
  /** Beyond the vendor: also delete the attributes' history. */
  history: z.boolean().optional(),
});

/** `1m`, `15m`, `1h`, `1d` or milliseconds. */
const INTERVAL = /^(\d{1,9})(ms|s|m|h|d)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: DAY_MS };
export const Interval = z
  .string()
  .regex(INTERVAL, 'an interval like 30s, 15m, 1h, 1d or milliseconds')
  .transform((s) => {
    const [, n, unit] = INTERVAL.exec(s)!;
    return Number(n) * UNIT_MS[unit ?? 'ms']!;
  })
  .pipe(
    z
      .number()
      .int()
      .min(1000, 'at least one second')
      .max(30 * DAY_MS),
  );

export const AggregateQuery = z.object({
  identifiers: identifierList,
  fn: z.enum(AGGREGATES).default('avg'),
  interval: Interval,
  ...range,
});
export const AggregateResult = z.object({
  fn: z.enum(AGGREGATES),
  interval_ms: z.number(),
  start_time: z.number(),
  end_time: z.number(),
  series: z.record(z.string(), z.array(z.object({ ts: z.number(), value: z.number().nullable() }))),
});

export const ExportQuery = z.object({ identifiers: identifierList, ...range });
