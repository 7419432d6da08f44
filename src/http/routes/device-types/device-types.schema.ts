import { z } from 'zod';
import { STREAM_IDENTIFIER } from '../../../../mqtt-broker/protocol/data-streams.ts';
import {
  ATTRIBUTE_DATA_TYPES,
  CONN_PROTOCOLS,
  CONN_TYPES,
  STREAM_FORMATS,
} from '../../../domain/device-types/device-types.service.ts';
import { CUSTOM_INFO_TYPES } from '../../../domain/device-types/extend-info-types.ts';
import { Descr, Id, Name, Tags } from '../common.schema.ts';

/** "1"/"2"/"3"; the number 1, 2 or 3 is accepted too and stored as its string. */
const ConnType = z
  .union([z.enum(CONN_TYPES), z.literal(1), z.literal(2), z.literal(3)])
  .transform((v) => String(v) as (typeof CONN_TYPES)[number]);
const ConnProtocol = z.enum(CONN_PROTOCOLS);

const atLeastOne = (b: object) => Object.values(b).some((v) => v !== undefined);

/** Raw TCP settings of a type (device-protocol.md §6); null clears them. */
const TcpHeartbeat = z
  .string()
  .min(1)
  .max(64)
  .refine((s) => !s.includes('\0'), 'must not contain NUL characters')
  .nullable()
  .describe(
    'raw TCP: a keep-alive message the devices send (compared as UTF-8 bytes; a trailing \\r\\n is tolerated); it keeps the link alive and is never recorded. null clears it',
  );
const TcpFrameGapMs = z
  .number()
  .int()
  .min(10)
  .max(10_000)
  .nullable()
  .describe(
    "raw TCP: bytes arriving within this many ms of each other form one message (hex and text streams); null = the server's TCP_FRAME_GAP_MS",
  );

export const CreateDeviceTypeBody = z.object({
  name: Name,
  descr: Descr.optional(),
  tags: Tags.optional(),
  conn_type: ConnType.optional().describe('"1" direct device (default), "2" gateway sub-device, "3" gateway'),
  conn_protocol: ConnProtocol.optional().describe('default mqtt'),
  allow_auto_create: z
    .boolean()
    .optional()
    .describe('create unknown devices on a certificate request with the type key'),
  tcp_heartbeat: TcpHeartbeat.optional(),
  tcp_frame_gap_ms: TcpFrameGapMs.optional(),
});
export const UpdateDeviceTypeBody = CreateDeviceTypeBody.partial().refine(
  atLeastOne,
  'give at least one field to change',
);

export const CreatedDeviceType = z.object({ id: z.string(), name: z.string(), type_key: z.string() });
export const TypeKey = z.object({ type_key: z.string() });

const typeFields = {
  id: z.string(),
  name: z.string(),
  descr: z.string(),
  tags: z.record(z.string(), z.string()),
  type_key: z.string().describe('empty for customer tokens'),
  conn_type: z.string(),
  conn_protocol: z.string(),
  allow_auto_create: z.boolean(),
  create_time: z.number(),
  device_count: z.number(),
};
export const DeviceTypeListItem = z.object(typeFields);
export const DeviceTypeList = z.object({ items: z.array(DeviceTypeListItem) });
export const DeviceType = z.object({
  ...typeFields,
  tcp_heartbeat: z.string().nullable().describe('raw TCP keep-alive message; null = none'),
  tcp_frame_gap_ms: z.number().nullable().describe("raw TCP frame gap in ms; null = the server's default"),
  update_time: z.number(),
});

/** Free-form at the edge; the service checks them against the data type or info type. */
const Options = z
  .record(z.string().max(64), z.unknown())
  .refine((o) => Object.keys(o).length <= 16, 'at most 16 options');

// Attribute models

const AttributeIdentifier = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'must match ^[A-Za-z_][A-Za-z0-9_]{0,63}$');
const Unit = z.string().max(32);
const DataType = z.enum(ATTRIBUTE_DATA_TYPES);
const dataOptionsDoc =
  'number: {min?, max?, step?, precision?}; string: {max_length?, choices?}; boolean: {true_text?, false_text?}; object/array: {}';

export const AttributeParams = z.object({ id: Id, identifier: z.string().min(1).max(64) });
export const CreateAttributeBody = z.object({
  identifier: AttributeIdentifier,
  name: Name,
  data_type: DataType,
  unit: Unit.optional(),
  data_options: Options.optional().describe(dataOptionsDoc),
});
export const UpdateAttributeBody = z
  .object({
    name: Name.optional(),
    data_type: DataType.optional(),
    unit: Unit.optional(),
    data_options: Options.optional().describe(`${dataOptionsDoc}. A new data_type without data_options clears them.`),
  })
  .refine(atLeastOne, 'give at least one of name, data_type, unit, data_options');
export const CreatedAttribute = z.object({ id: z.string(), identifier: z.string() });
export const Attribute = z.object({
  id: z.string(),
  identifier: z.string(),
  name: z.string(),
  data_type: z.string(),
  unit: z.string(),
  data_options: z.record(z.string(), z.unknown()),
  create_time: z.number(),
  update_time: z.number(),
});
export const AttributeList = z.object({ items: z.array(Attribute) });

// Custom data streams

const StreamIdentifier = z.string().regex(STREAM_IDENTIFIER, 'must match ^[A-Za-z0-9_-]{1,64}$');
const StreamFormat = z.enum(STREAM_FORMATS);

export const StreamParams = z.object({ id: Id, identifier: z.string().min(1).max(64) });
export const CreateStreamBody = z.object({
  identifier: StreamIdentifier,
  name: Name.optional().describe('defaults to the identifier'),
  format: StreamFormat,
  tcp_bound: z.boolean().optional().describe('at most one stream per type'),
  map_to_attributes: z.boolean().optional().describe('json streams only'),
});
export const UpdateStreamBody = z
  .object({
    name: Name.optional(),
    format: StreamFormat.optional(),
    tcp_bound: z.boolean().optional(),
    map_to_attributes: z.boolean().optional(),
  })
  .refine(atLeastOne, 'give at least one of name, format, tcp_bound, map_to_attributes');
export const CreatedStream = z.object({ id: z.string(), identifier: z.string() });
export const Stream = z.object({
  id: z.string(),
  identifier: z.string(),
  name: z.string(),
  format: z.string(),
  tcp_bound: z.boolean(),
  map_to_attributes: z.boolean(),
  create_time: z.number(),
  update_time: z.number(),
});
export const StreamList = z.object({ items: z.array(Stream) });

// Extend-info definitions

const infoOptionsDoc = 'text: {max_length?}; number: {min?, max?, integer?}; boolean: {}; enum: {choices} (required)';

export const InfoParams = z.object({ id: Id, info_id: Id });
export const CreateInfoBody = z.object({
  info_type: z.enum(CUSTOM_INFO_TYPES),
  name: Name,
  descr: Descr.optional(),
  enabled: z.boolean().optional(),
  options: Options.optional().describe(infoOptionsDoc),
});
export const UpdateInfoBody = z
  .object({
    name: Name.optional(),
    descr: Descr.optional(),
    enabled: z.boolean().optional(),
    options: Options.optional().describe(`${infoOptionsDoc}; checked against the existing info_type`),
  })
  .refine(atLeastOne, 'give at least one of name, descr, enabled, options');
export const CreatedInfo = z.object({ id: z.string(), name: z.string() });
export const ExtendInfo = z.object({
  id: z.string(),
  info_type: z.string(),
  name: z.string(),
  descr: z.string(),
  enabled: z.boolean(),
  options: z.record(z.string(), z.unknown()),
  create_time: z.number(),
  update_time: z.number(),
  is_standard: z.boolean(),
});
export const ExtendInfoList = z.object({ items: z.array(ExtendInfo) });
