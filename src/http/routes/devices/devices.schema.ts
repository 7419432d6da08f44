import { z } from 'zod';
import { Descr, Flag, Id, Name, pagingQuery, TagKeys, Tags } from '../common.schema.ts';

const DeviceKey = z.string().trim().max(128);

const TypeInfo = z.object({ id: z.string(), name: z.string(), conn_type: z.string(), conn_protocol: z.string() });
export const Device = z.object({
  id: z.string(),
  name: z.string(),
  descr: z.string(),
  device_key: z.string(),
  device_code: z.string(),
  tags: z.record(z.string(), z.string()),
  create_time: z.number(),
  alarm: z.union([z.object({ level: z.number(), since: z.number(), rule: z.string().nullable() }), z.object({})]),
  active: z.record(z.string(), z.number()),
  online: z.boolean(),
  type: z.string(),
  type_info: TypeInfo,
});
export const DeviceDetail = Device.extend({
  groups: z.array(z.string()),
  view_token: z.string(),
  /** A gateway sub-device: its gateway and address; null otherwise. */
  gateway: z.object({ id: z.string(), address: z.string() }).nullable(),
  /** Extension: a disabled device cannot connect or report. */
  disabled: z.boolean(),
});

const idList = z
  .string()
  .max(4096)
  .transform((s) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
  )
  .pipe(z.array(Id).max(100));

/** Clients that build query strings from empty form fields send `type=&group=`: empty means "no filter". */
const blankAsUnset = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => (v === '' ? undefined : v), schema.optional());

/** Extension (docs/http-api.md §3.4): name contains the text (any case) or device_key starts with it. */
export const DeviceSearch = z.string().trim().min(1).max(64).optional();

export const DeviceListQuery = pagingQuery(500).extend({
  type: blankAsUnset(Id),
  group: blankAsUnset(Id),
  groups: blankAsUnset(idList),
  include_sub_groups: Flag,
  online: z
    .enum(['0', '1', 'true', 'false'])
    .optional()
    .transform((v) => (v === undefined ? undefined : v === '1' || v === 'true')),
  device_key: blankAsUnset(DeviceKey),
  search: DeviceSearch,
  after: blankAsUnset(Id),
});

export const DeviceList = z.object({ items: z.array(Device), total: z.number(), page_total: z.number() });

export const CreateDeviceBody = z.object({
  name: Name,
  descr: Descr.optional(),
  type: z.union([Id, z.literal('')]).optional(),
  tags: Tags.optional(),
  device_key: DeviceKey.optional(),
});
export const CreatedDevice = z.object({ id: z.string(), name: z.string() });

export const UpdateInfoBody = z
  .object({
    name: Name.optional(),
    descr: Descr.optional(),
    device_key: DeviceKey.optional(),
    disabled: z
      .boolean()
      .optional()
      .describe('Extension: a disabled device cannot connect or report; disabling it ends its connections at once'),
  })
  .refine(
    (b) => b.name !== undefined || b.descr !== undefined || b.device_key !== undefined || b.disabled !== undefined,
    'give at least one of name, descr, device_key, disabled',
  );
export const TagsBody = z.object({ tags: Tags });
export const KeysBody = z.object({ keys: TagKeys });
export const GroupsBody = z.object({ groups: z.array(Id).max(100) });

export const Certificate = z.object({
  id: z.string(),
  name: z.string(),
  access_token: z.string(),
  project_key: z.string(),
});

export const DevicesStat = z.object({
  device_total: z.number(),
  online_device_total: z.number(),
  offline_device_total: z.number(),
  active_device_total: z.number(),
  inactive_device_total: z.number(),
  alarm_device_total: z.number(),
});
export const DevicesAlarmStat = z.object({
  device_total: z.number(),
  alarm_1_total: z.number(),
  alarm_2_total: z.number(),
  alarm_3_total: z.number(),
  normal_total: z.number(),
});
