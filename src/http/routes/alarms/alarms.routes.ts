import type { FastifyInstance } from 'fastify';
import type { z } from 'zod';
import { scopeOf, type Principal } from '../../../domain/auth/principal.ts';
import type { Services } from '../../../composition/services.ts';
import { IdParams } from '../common.schema.ts';
import { Empty, endpoint } from '../route.ts';
import {
  AlarmLog,
  AlarmLogList,
  AlarmLogQuery,
  CreatedTarget,
  CreateRuleBody,
  CreateTargetBody,
  DeviceAlarmLogQuery,
  NoteBody,
  Rule,
  RuleList,
  RuleListQuery,
  Target,
  TargetList,
  UpdateRuleBody,
  UpdateTargetBody,
} from './alarms.schema.ts';

const RULE_DESCRIPTION =
  'A rule watches the devices of one type (or only `device_ids`, which must be of that type (400 otherwise), / members of `group_ids`). `condition.kind`: ' +
  '`attribute` (a reported value: `>`, `>=`, `<`, `<=` a number; `between`/`outside` `min`..`max`; `==`/`!=` a number, boolean or string; ' +
  '`change`; optional `for_seconds` persistence), `offline` (offline for more than `for_seconds`), `silence` (no report for `seconds`). ' +
  'A trigger writes an alarm-log entry (`alarm_status` 1) and sets the device `alarm`; when the condition stops holding an entry with ' +
  '`alarm_status` 0 ends it. `message` may use `{{device.name}}`, `{{device.id}}`, `{{rule.name}}`, `{{identifier}}`, `{{value}}`, ' +
  '`{{previous}}`, `{{threshold}}`, `{{min}}`, `{{max}}`, `{{level}}`. Within `suppress_seconds` of a trigger the same rule does not trigger ' +
  'again for the device; if the condition still holds when the window ends, it triggers then.';

const LOG_DESCRIPTION =
  'Newest first. `alarm_status` 1 = triggered, 0 = ended (`alarm_info.reason`: recovered, cleared, rule_deleted, rule_disabled, rule_changed). ' +
  '`notify_logs` lists every webhook delivery attempt. Beyond the vendor: `rule_id`, `active`, `end_time`, `trigger_id`, `ack`, `clear`.';

export function alarmRoutes(app: FastifyInstance, { services }: { services: Services }) {
  const { alarms, devices } = services;
  const ruleTags = ['Alarm rules'];
  const logTags = ['Alarms'];
  const targetTags = ['Notification targets'];

  /** A page of the alarm log, of one device when `deviceId` is given (another project's or customer's device is "not found", not an empty page). */
  async function logsOf(
    principal: Principal,
    deviceId: string | undefined,
    query: z.infer<typeof DeviceAlarmLogQuery>,
  ) {
    const scope = scopeOf(principal);
    if (deviceId !== undefined) await devices.get(scope, deviceId);
    return alarms.logs.list(
      scope,
      { deviceId, status: query.alarm_status, level: query.alarm_level, active: query.active },
      query.page,
      query.page_records,
    );
  }

  // ---- rules
  endpoint(app, {
    method: 'GET',
    url: '/api/v1/alarm_rules',
    access: 'manage',
    tags: ruleTags,
    summary: "The project's alarm rules, newest first",
    query: RuleListQuery,
    response: RuleList,
    handler: ({ principal, query }) =>
      alarms.rules.list(scopeOf(principal), query.type, query.page, query.page_records),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/alarm_rule',
    access: 'manage',
    tags: ruleTags,
    summary: 'Create an alarm rule',
    description: RULE_DESCRIPTION,
    body: CreateRuleBody,
    response: Rule,
    handler: ({ principal, body }) => alarms.rules.create(scopeOf(principal), body),
  });

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/alarm_rule/:id',
    access: 'manage',
    tags: ruleTags,
    summary: 'Read an alarm rule',
    params: IdParams,
    response: Rule,
    handler: ({ principal, params }) => alarms.rules.get(scopeOf(principal), params.id),
  });

  endpoint(app, {
    method: 'PUT',
    url: '/api/v1/alarm_rule/:id',
    access: 'manage',
    tags: ruleTags,
    summary: 'Change an alarm rule',
    description:
      "Fields given replace the stored ones; `device_ids` must be devices of the rule's `device_type_id` (400 otherwise, also when only the type changes). " +
      'Active alarms on devices the rule still covers stay until the next evaluation under the new rule; those on devices it no longer covers (type, devices or groups changed) end (`reason: rule_changed`); disabling the rule ends them all (`reason: rule_disabled`).',
    params: IdParams,
    body: UpdateRuleBody,
    response: Rule,
    handler: ({ principal, params, body }) => alarms.rules.update(scopeOf(principal), params.id, body),
  });

  endpoint(app, {
    method: 'DELETE',
    url: '/api/v1/alarm_rule/:id',
    access: 'manage',
    tags: ruleTags,
    summary: 'Delete an alarm rule',
    description: 'Its active alarms end (`reason: rule_deleted`); its log entries stay.',
    params: IdParams,
    response: Empty,
    handler: ({ principal, params }) => alarms.rules.delete(scopeOf(principal), params.id),
  });

  // ---- the alarm log (http-api.md §3 "Alarms")
  endpoint(app, {
    method: 'GET',
    url: '/api/v1/alarm_logs',
    access: 'project',
    tags: logTags,
    summary: "The project's alarm log",
    description: `${LOG_DESCRIPTION} Filters: \`device\`, \`alarm_status\`, \`alarm_level\`, \`active=1\`.`,
    query: AlarmLogQuery,
    response: AlarmLogList,
    handler: ({ principal, query }) => logsOf(principal, query.device, query),
  });

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/device/:id/alarm_logs',
    access: 'project',
    tags: logTags,
    summary: "A device's alarm log",
    description: LOG_DESCRIPTION,
    params: IdParams,
    query: DeviceAlarmLogQuery,
    response: AlarmLogList,
    handler: ({ principal, params, query }) => logsOf(principal, params.id, query),
  });

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/alarm_log/:id',
    access: 'project',
    tags: logTags,
    summary: 'Read one alarm-log entry',
    params: IdParams,
    response: AlarmLog,
    handler: ({ principal, params }) => alarms.logs.get(scopeOf(principal), params.id),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/alarm_log/:id/ack',
    access: 'manage',
    tags: logTags,
    summary: 'Acknowledge an alarm',
    description: 'On a trigger entry (`alarm_status` 1), once; the alarm stays active. Records who and `note`.',
    params: IdParams,
    body: NoteBody,
    response: AlarmLog,
    handler: ({ principal, params, body }) =>
      alarms.logs.acknowledge(principal, scopeOf(principal), params.id, body.note),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/alarm_log/:id/clear',
    access: 'manage',
    tags: logTags,
    summary: 'Clear an active alarm by hand',
    description:
      'On an active trigger entry: writes the `alarm_status` 0 entry (`alarm_info.reason: cleared`, who, `note`) and updates the device `alarm`. ' +
      'The rule triggers again only after its condition has stopped holding. Answers the new entry.',
    params: IdParams,
    body: NoteBody,
    response: AlarmLog,
    handler: ({ principal, params, body }) => alarms.logs.clear(principal, scopeOf(principal), params.id, body.note),
  });

  // ---- notification targets
  endpoint(app, {
    method: 'GET',
    url: '/api/v1/notification_targets',
    access: 'manage',
    tags: targetTags,
    summary: "The project's notification targets (secrets are not shown)",
    response: TargetList,
    handler: ({ principal }) => alarms.targets.list(scopeOf(principal)),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/notification_target',
    access: 'manage',
    tags: targetTags,
    summary: 'Create a webhook for the alarms of the project',
    description:
      'Every alarm-log entry of level ≥ `min_level` is POSTed as JSON `{event: "alarm", project_id, alarm: {id, device_id, device, rule_id, alarm_status, alarm_level, alarm_info, create_time}}` ' +
      'with headers `X-Timestamp` (ms) and `X-Signature: sha256=<hex HMAC-SHA256 of "<X-Timestamp>.<raw body>" with the secret>`. ' +
      'A 2xx answer is delivered; network errors, timeouts, 408, 429 and 5xx are retried with exponential back-off. `secret` is generated when omitted and shown only in this answer.',
    body: CreateTargetBody,
    response: CreatedTarget,
    handler: ({ principal, body }) => alarms.targets.create(scopeOf(principal), body),
  });

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/notification_target/:id',
    access: 'manage',
    tags: targetTags,
    summary: 'Read a notification target',
    params: IdParams,
    response: Target,
    handler: ({ principal, params }) => alarms.targets.get(scopeOf(principal), params.id),
  });

  endpoint(app, {
    method: 'PUT',
    url: '/api/v1/notification_target/:id',
    access: 'manage',
    tags: targetTags,
    summary: 'Change a notification target',
    params: IdParams,
    body: UpdateTargetBody,
    response: Target,
    handler: ({ principal, params, body }) => alarms.targets.update(scopeOf(principal), params.id, body),
  });

  endpoint(app, {
    method: 'DELETE',
    url: '/api/v1/notification_target/:id',
    access: 'manage',
    tags: targetTags,
    summary: 'Delete a notification target',
    params: IdParams,
    response: Empty,
    handler: ({ principal, params }) => alarms.targets.delete(scopeOf(principal), params.id),
  });
}
