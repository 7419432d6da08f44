import { z } from 'zod';
import { STREAM_IDENTIFIER } from '../../../../mqtt-broker/protocol/data-streams.ts';
import { MESSAGE_TYPES } from '../../../domain/telemetry/data-push.service.ts';
import { IdParams } from '../common.schema.ts';

export const StreamIdentifier = z.string().regex(STREAM_IDENTIFIER, 'must match ^[A-Za-z0-9_-]{1,64}$');
export const DeviceStreamParams = IdParams.extend({ identifier: StreamIdentifier });

/** Which live connection carries the bytes (http-api.md §3); the device must be connected over it. */
export const PushModeQuery = z.object({ push_mode: z.enum(['mqtt', 'tcp']).default('mqtt') });

/**
 * `{type, msg}`; the vendor document's body shows `message` while every example uses `msg`: both
 * are accepted (http-api.md §3). The bytes' size is bounded by the service.
 */
export const DataSetBody = z
  .object({
    type: z.enum(MESSAGE_TYPES),
    msg: z.unknown().optional(),
    message: z.unknown().optional(),
  })
  .refine((b) => b.msg !== undefined || b.message !== undefined, {
    message: 'give msg (or its alias message)',
    path: ['msg'],
  })
  .transform((b) => ({ type: b.type, msg: b.msg !== undefined ? b.msg : b.message }));

/** `{k: v, …}` of attributes to push or to store as cloud attributes. */
export const ControlAttributesBody = z.record(z.string(), z.unknown());
