import { z } from 'zod';
import { ALARM_LIMITS } from '../../../domain/alarms/validation.ts';
import { Id, Name, paged, pagingQuery } from '../common.schema.ts';

const Seconds = (min: number) => z.number().int().min(min).max(ALARM_LIMITS.maxSeconds);

export const AttributeCondition = z
  .object({
    kind: z.literal('attribute'),
    identifier: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'an attribute identifier'),
    op: z.enum(['>', '>=', '<', '<=', '==', '!=', 'between', 'outside', 'change']),
    /** For >, >=, <, <= a number; for ==, != a number, boolean or string. */
    value: z.union([z.number(), z.boolean(), z.string().max(256)]).optional(),
    /** For between / outside (inclusive bounds). */
    min: z.number().optional(),
    max: z.number().optional(),
    /** The condition must hold this long before the alarm triggers (not for change). */
    for_seconds: Seconds(0).optional(),
  })
  .describe(
    'Triggers on a reported attribute value. `between`/`outside` use `min`..`max` (inclusive); `change` holds while the latest report changed the value.',
  );

export const OfflineCondition = z
  .object({ kind: z.literal('offline'), for_seconds: Seconds(0) })
  .describe(
    'Triggers when a device that has been active is offline for more than `for_seconds`; recovers when it connects.',
  );

export const SilenceCondition = z
  .object({ kind: z.literal('silence'), seconds: Seconds(1) })
  .describe('Triggers when a device sends no attribute report for `seconds`; recovers at its next report.');

export const Condition = z.discriminatedUnion('kind', [AttributeCondition, OfflineCondition, SilenceCondition]);

const Level = z.number().int().min(1).max(3).describe('1 normal, 2 serious, 3 urgent');

export const CreateRuleBody = z.object({
  name: Name,
  device_type_id: Id,
  level: Level,
  condition: Condition,
  /** Only these devices of the type (and/or members of `group_ids`); both empty = every device of the type. */
  device_ids: z.array(Id).max(ALARM_LIMITS.deviceIds).optional(),
  group_ids: z.array(Id).max(ALARM_LIMITS.groupIds).optional(),
  message: z.string().max(ALARM_LIMITS.messageMax).optional(),
  enabled: z.boolean().optional(),
  suppress_seconds: Seconds(0).optional(),
});

export const UpdateRuleBody = CreateRuleBody.partial().refine(
  (b) => Object.keys(b).length > 0,
  'give at least one field',
);

export const Rule = z.object({
  id: z.string(),
  name: z.string(),
  device_type_id: z.string(),
  enabled: z.boolean(),
  level: z.number(),
  condition: Condition,
  device_ids: z.array(z.string()),
  group_ids: z.array(z.string()),
  message: z.string(),
  suppress_seconds: z.number(),
  create_time: z.number(),
  update_time: z.number(),
});

export const RuleList = paged(Rule);
export const RuleListQuery = pagingQuery(500, 20).extend({ type: Id.optional() });

const NotifyAttempt = z.object({
  target: z.string(),
  time: z.number(),
  attempt: z.number(),
  status: z.enum(['delivered', 'failed', 'dropped', 'skipped']),
  http_status: z.number().optional(),
  error: z.string().optional(),
  next_attempt_time: z.number().optional(),
});

const Operator = z.object({ by: z.string(), note: z.string(), time: z.number() });

export const AlarmLog = z.object({
  id: z.string(),
  device_id: z.string(),
  alarm_status: z
    .number()
    .describe('1 = the alarm triggered; 0 = it ended (recovered, cleared, or its rule deleted/disabled)'),
  alarm_level: z.number(),
  alarm_info: z.record(z.string(), z.unknown()),
  create_time: z.number(),
  notify_logs: z.array(NotifyAttempt),
  device: z.object({ id: z.string(), name: z.string() }),
  rule_id: z.string(),
  active: z.boolean(),
  end_time: z.number().nullable(),
  trigger_id: z.string().nullable(),
  ack: Operator.nullable(),
  clear: Operator.nullable(),
});

export const AlarmLogList = paged(AlarmLog);

const Status = z.enum(['0', '1']).transform(Number).optional();
export const DeviceAlarmLogQuery = pagingQuery(500, 20).extend({
  alarm_status: Status,
  alarm_level: z.enum(['1', '2', '3']).transform(Number).optional(),
  /** `1`: only active alarms. */
  active: z
    .enum(['0', '1', 'true', 'false'])
    .transform((v) => v === '1' || v === 'true')
    .optional(),
});
export const AlarmLogQuery = DeviceAlarmLogQuery.extend({ device: Id.optional() });

export const NoteBody = z.object({ note: z.string().max(ALARM_LIMITS.noteMax).default('') });

const Url = z.url({ protocol: /^https?$/ }).max(2048);

export const CreateTargetBody = z.object({
  name: Name,
  url: Url,
  secret: z.string().min(16).max(256).optional(),
  min_level: Level.optional(),
  enabled: z.boolean().optional(),
});
export const UpdateTargetBody = CreateTargetBody.partial().refine(
  (b) => Object.keys(b).length > 0,
  'give at least one field',
);

export const Target = z.object({
  id: z.string(),
  name: z.string(),
  kind: z.string(),
  url: z.string(),
  min_level: z.number(),
  enabled: z.boolean(),
  create_time: z.number(),
  update_time: z.number(),
});
export const CreatedTarget = Target.extend({ secret: z.string() });
export const TargetList = z.object({ items: z.array(Target) });
