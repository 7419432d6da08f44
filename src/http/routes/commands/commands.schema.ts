import { z } from 'zod';
import { COMMAND_LIMITS } from '../../../domain/commands/commands.service.ts';
import { paged, pagingQuery } from '../common.schema.ts';

const Params = z
  .record(z.string().max(256), z.unknown())
  .refine(
    (p) => Buffer.byteLength(JSON.stringify(p)) <= COMMAND_LIMITS.paramsMaxBytes,
    `at most ${COMMAND_LIMITS.paramsMaxBytes} bytes as JSON`,
  );

/** http-api.md §3 `{method, params, id?}`, plus our `ttl` (queue for an offline device) and `timeout` (seconds to wait for the reply). */
export const SendCommandBody = z.object({
  method: z.string().min(1).max(COMMAND_LIMITS.methodMax),
  params: Params.optional(),
  id: z.number().int().min(1).max(COMMAND_LIMITS.seqMax).optional(),
  ttl: z.number().int().min(1).max(COMMAND_LIMITS.ttlMaxSeconds).optional(),
  timeout: z.number().int().min(1).max(COMMAND_LIMITS.timeoutMaxSeconds).optional(),
});

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
