import { z } from 'zod';
import { LIVE_KINDS, type LiveKind } from '../../../domain/events/live-events.ts';
import { Id } from '../common.schema.ts';

/** At most this many devices in one stream's `device` filter. */
export const MAX_STREAM_DEVICES = 100;

const list = (s: string) => [
  ...new Set(
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
  ),
];

/** `kinds` and `device` of `GET /api/v1/events` (http-api.md §4.14): comma lists; empty means "no filter". */
export const EventsQuery = z.object({
  kinds: z
    .string()
    .max(256)
    .optional()
    .transform((s) => (s === undefined ? [] : list(s)))
    .pipe(z.array(z.enum(LIVE_KINDS, { error: `must be a comma list of ${LIVE_KINDS.join(', ')}` })))
    .transform((kinds): LiveKind[] | undefined => (kinds.length ? kinds : undefined)),
  device: z
    .string()
    .max(8192)
    .optional()
    .transform((s) => (s === undefined ? [] : list(s)))
    .pipe(z.array(Id).max(MAX_STREAM_DEVICES, `at most ${MAX_STREAM_DEVICES} devices`))
    .transform((ids) => (ids.length ? ids : undefined)),
});
