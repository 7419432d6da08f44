import { z } from 'zod';
import { EventReport } from '../../../domain/devices/device-events.service.ts';
import { ATTRIBUTE_IDENTIFIER, MAX_ATTRIBUTES } from '../../../domain/telemetry/current-values.service.ts';

/** The device access token in the path (device-protocol.md §5). */
export const TokenParams = z.object({ access_token: z.string().min(1).max(256) });

/**
 * An attribute object `{identifier: value, …}`; the attribute rules (identifiers, value types,
 * sizes) are the service's, the same for MQTT and HTTP.
 */
export const AttributesBody = z.record(z.string(), z.unknown());

/** `?keys=a,b`: only these attributes; absent or empty = all (as `{}` on `attributes/get`). */
export const KeysQuery = z.object({
  keys: z
    .string()
    .max(16_384)
    .transform((s) =>
      s
        .split(',')
        .map((k) => k.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.string().regex(ATTRIBUTE_IDENTIFIER, 'must be an attribute identifier')).max(MAX_ATTRIBUTES))
    .transform((keys) => (keys.length ? keys : undefined))
    .optional(),
});

export const ReportResult = z.object({ ts: z.number() });
export const AttributesResult = z.object({ attributes: z.record(z.string(), z.unknown()) });
export const NoFields = z.object({});

export const EventBody = EventReport;

const blankAsUnset = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => (v === '' ? undefined : v), schema.optional());

/** `POST /device/v1/certificate` (device-protocol.md §4). SDKs send `type_key: ""` when they have none. */
export const CertificateBody = z.object({
  device_key: z.string().trim().min(1).max(128),
  type_key: blankAsUnset(z.string().max(128)),
  customer_id: blankAsUnset(z.string().max(64)),
});

export const CertificateResult = z.object({
  device: z.object({ id: z.string(), name: z.string(), access_token: z.string(), conn_type: z.string() }),
  message: z.string(),
});
