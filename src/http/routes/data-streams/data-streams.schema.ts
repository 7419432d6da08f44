import { z } from 'zod';
import { StreamIdentifier } from '../control/control.schema.ts';
import { IdParams, paged, pagingQuery } from '../common.schema.ts';

export const StreamMessagesParams = IdParams.extend({ identifier: StreamIdentifier });

/** A time in ms; a fractional part is floored (http-api.md §1). */
const Time = z.coerce.number().nonnegative().max(Number.MAX_SAFE_INTEGER).transform(Math.floor);

/** Paging as the command log, and the time window of the attribute series (http-api.md §3). */
export const StreamMessagesQuery = pagingQuery(100, 20).extend({
  start_time: Time.optional(),
  end_time: Time.optional(),
});

export const StreamMessage = z.object({
  id: z.string(),
  direction: z.enum(['up', 'down']).describe('up: from the device; down: sent to it'),
  transport: z.enum(['mqtt', 'tcp']),
  ts: z.number(),
  size: z.number().int().describe('bytes'),
  format: z.enum(['hex', 'text', 'json']).describe("the stream's format (hex for streams the type does not define)"),
  data: z.string().describe('hex streams: the bytes as lowercase hex; text and json streams: the bytes as UTF-8 text'),
  hex: z.string().describe('the exact bytes as lowercase hex, whatever the format'),
});
export const StreamMessages = paged(StreamMessage);
