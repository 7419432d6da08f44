import { z } from 'zod';
import { BadRequest, type FieldError } from '../../errors.ts';
import { unstorableJson } from '../../lib/unstorable-text.ts';

/** Bounds of a command (device-protocol.md §3, §10); the HTTP schemas use the same numbers. */
export const COMMAND_LIMITS = {
  methodMax: 64,
  /** `<id>` of `command/send/<id>`: a positive 32-bit integer, as the SDKs parse it. */
  seqMax: 2_147_483_647,
  /** Serialized `params`, in bytes. */
  paramsMaxBytes: 64 * 1024,
  ttlMaxSeconds: 30 * 24 * 3600,
  timeoutMaxSeconds: 3600,
  timeoutDefaultSeconds: 30,
  syncWaitMaxSeconds: 60,
  /** Commands one device may have waiting for it (queued with a `ttl`); more are refused. */
  queuedPerDevice: 100,
  /** Queued commands delivered per page on connect: a long queue is never loaded whole. */
  deliveryPage: 20,
} as const;

const Params = z
  .record(z.string().max(256), z.unknown())
  .refine(
    (p) => Buffer.byteLength(JSON.stringify(p)) <= COMMAND_LIMITS.paramsMaxBytes,
    `at most ${COMMAND_LIMITS.paramsMaxBytes} bytes as JSON`,
  );

/**
 * A command to send: http-api.md §3 `{method, params, id?}`, plus our `ttl` (seconds an offline
 * device's command waits for it to connect) and `timeout` (seconds a sent command waits for its
 * reply). The one rule set of a command: the HTTP body schemas are this schema.
 */
export const SendCommandInput = z.object({
  method: z.string().min(1).max(COMMAND_LIMITS.methodMax),
  params: Params.optional(),
  /** The wire `<id>`; allocated per device when absent. */
  id: z.number().int().min(1).max(COMMAND_LIMITS.seqMax).optional(),
  ttl: z.number().int().min(1).max(COMMAND_LIMITS.ttlMaxSeconds).optional(),
  timeout: z.number().int().min(1).max(COMMAND_LIMITS.timeoutMaxSeconds).optional(),
});
export type SendCommandInput = z.input<typeof SendCommandInput>;

/** A command as checked, ready to store. */
export interface CheckedCommand {
  method: string;
  params: Record<string, unknown>;
  id: number | undefined;
  ttl: number | undefined;
  timeoutMs: number;
}

function invalid(errors: FieldError[]): never {
  const first = errors[0]!;
  throw new BadRequest(`Invalid input: ${first.path}: ${first.message}`, errors);
}

/**
 * Checks a command for callers that do not come through HTTP (whose bodies were checked against
 * the same schema already): JSON the store cannot hold first, as the HTTP body parser does, then
 * the schema.
 */
export function checkSendInput(input: SendCommandInput): CheckedCommand {
  const problem = unstorableJson({ method: input.method, params: input.params ?? {} });
  if (problem) invalid([{ path: 'params', message: problem }]);
  const parsed = SendCommandInput.safeParse(input);
  if (!parsed.success) {
    invalid(parsed.error.issues.map((i) => ({ path: i.path.map(String).join('.') || 'body', message: i.message })));
  }
  const { method, params = {}, id, ttl, timeout = COMMAND_LIMITS.timeoutDefaultSeconds } = parsed.data;
  return { method, params, id, ttl, timeoutMs: timeout * 1000 };
}
