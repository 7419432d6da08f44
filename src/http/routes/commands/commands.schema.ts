import { z } from 'zod';
import { COMMAND_LIMITS, SendCommandInput } from '../../../domain/commands/command-input.ts';
import { paged, pagingQuery } from '../common.schema.ts';

/** http-api.md §3 `{method, params, id?}`, plus our `ttl` (queue for an offline device) and `timeout` (seconds to wait for the reply). */
export const SendCommandBody = SendCommandInput;

export const SyncSendCommandBody = SendCommandBody.extend({
  /** Seconds to wait for the reply; default = the command's timeout, at most 60. */
  wait: z.number().int().min(1).max(COMMAND_LIMITS.syncWaitMaxSeconds).optional(),
});

export const CommandState = z.enum(['queued', 'sent', 'replied', 'timeout', 'expired', 'failed']);

export const Command = z.object({
  id: z.string(),
  /** The wire `<id>` of `command/send/<id>`. */
  command_id: z.number(),
  method: z.string(),
  params: z.record(z.string(), z.unknown()),
  state: CommandState,
  reply: z.object({ method: z.string(), params: z.unknown() }).nullable(),
  error: z.string().nullable(),
  create_time: z.number(),
  sent_time: z.number().nullable(),
  reply_time: z.number().nullable(),
  expire_time: z.number().nullable(),
});

export const CommandLog = paged(Command);
export const CommandLogQuery = pagingQuery(100, 20);

/** The device access token in the path of the application-side calls (device-protocol.md §5). */
export const AccessTokenParams = z.object({ access_token: z.string().min(1).max(256) });
