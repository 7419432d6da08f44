import { sql } from 'drizzle-orm';
import { boolean, index, integer, jsonb, pgTable, smallint, text, uniqueIndex } from 'drizzle-orm/pg-core';
import { created, ms, updated } from './columns.ts';
import { deviceTypes } from './device-types.ts';
import { devices } from './devices.ts';
import { projectRef } from './projects.ts';

/** Alarm rules, their logs and the notifications they send (README "Alarms"). */

/** An alarm rule's condition (src/domain/alarms/conditions.ts checks and evaluates it). */
export type AlarmCondition =
  | {
      kind: 'attribute';
      identifier: string;
      op: '>' | '>=' | '<' | '<=' | '==' | '!=' | 'between' | 'outside' | 'change';
      value?: number | boolean | string;
      min?: number;
      max?: number;
      /** The condition must hold this long before the alarm triggers. */
      for_seconds?: number;
    }
  | { kind: 'offline'; for_seconds: number }
  | { kind: 'silence'; seconds: number };

/** Alarm rules (README "Alarms"): per device type, optionally narrowed to devices or groups. */
export const alarmRules = pgTable(
  'alarm_rules',
  {
    id: text('id').primaryKey(),
    projectId: projectRef(),
    deviceTypeId: text('device_type_id')
      .notNull()
      .references(() => deviceTypes.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    enabled: boolean('enabled').notNull().default(true),
    /** 1 normal, 2 serious, 3 urgent. */
    level: smallint('level').notNull(),
    condition: jsonb('condition').$type<AlarmCondition>().notNull(),
    /** Empty = every device of the type; otherwise only these devices / members of these groups. */
    deviceIds: jsonb('device_ids').$type<string[]>().notNull().default([]),
    groupIds: jsonb('group_ids').$type<string[]>().notNull().default([]),
    message: text('message').notNull().default(''),
    suppressSeconds: integer('suppress_seconds').notNull().default(0),
    createTime: created(),
    updateTime: updated(),
  },
  (t) => [index('alarm_rules_project_idx').on(t.projectId, t.id)],
);

export interface NotifyAttempt {
  target: string;
  time: number;
  attempt: number;
  /** `skipped`: not attempted while the target's circuit breaker is open. */
  status: 'delivered' | 'failed' | 'dropped' | 'skipped';
  http_status?: number;
  error?: string;
  /** Set when another attempt is scheduled after this failed one. */
  next_attempt_time?: number;
}

/**
 * The alarm log (http-api.md §3 "Alarms"): a trigger (`alarm_status` 1) and its recovery or clear
 * (`alarm_status` 0). A trigger with no `end_time` is an active alarm: one at most per device and rule.
 */
export const alarmLogs = pgTable(
  'alarm_logs',
  {
    /** Time-ordered: pages newest first by id. */
    id: text('id').primaryKey(),
    projectId: projectRef(),
    deviceId: text('device_id')
      .notNull()
      .references(() => devices.id, { onDelete: 'cascade' }),
    /** The rule that produced the entry; kept (not a foreign key) after the rule is deleted. */
    ruleId: text('rule_id').notNull(),
    alarmStatus: smallint('alarm_status').notNull(),
    alarmLevel: smallint('alarm_level').notNull(),
    alarmInfo: jsonb('alarm_info').$type<Record<string, unknown>>().notNull().default({}),
    notifyLogs: jsonb('notify_logs').$type<NotifyAttempt[]>().notNull().default([]),
    /** Of a trigger: when it recovered or was cleared (null = still active). */
    endTime: ms('end_time'),
    /** The trigger entry a recovery closes. */
    triggerId: text('trigger_id'),
    ackBy: text('ack_by'),
    ackNote: text('ack_note'),
    ackTime: ms('ack_time'),
    clearBy: text('clear_by'),
    clearNote: text('clear_note'),
    clearTime: ms('clear_time'),
    createTime: created(),
  },
  (t) => [
    index('alarm_logs_project_id_idx').on(t.projectId, t.id),
    index('alarm_logs_device_id_idx').on(t.deviceId, t.id),
    uniqueIndex('alarm_logs_active_uq')
      .on(t.deviceId, t.ruleId)
      .where(sql`alarm_status = 1 and end_time is null`),
  ],
);

/** Where a project's alarms are sent: webhooks signed with the target's secret. */
export const notificationTargets = pgTable(
  'notification_targets',
  {
    id: text('id').primaryKey(),
    projectId: projectRef(),
    name: text('name').notNull(),
    /** `webhook` (the only kind so far). */
    kind: text('kind').notNull().default('webhook'),
    url: text('url').notNull(),
    /** HMAC key of the signature header; needed in clear to sign, never shown after creation. */
    secret: text('secret').notNull(),
    /** Alarms below this level are not sent. */
    minLevel: smallint('min_level').notNull().default(1),
    enabled: boolean('enabled').notNull().default(true),
    createTime: created(),
    updateTime: updated(),
  },
  (t) => [index('notification_targets_project_idx').on(t.projectId, t.id)],
);

/**
 * Webhook deliveries not yet done: waiting, running or scheduled for a retry at `due_time`. Kept so
 * that they survive a restart (src/domain/alarms/notifier.ts reloads them); removed with their
 * target, entry or project.
 */
export const notifyJobs = pgTable(
  'notify_jobs',
  {
    id: text('id').primaryKey(),
    projectId: projectRef(),
    targetId: text('target_id')
      .notNull()
      .references(() => notificationTargets.id, { onDelete: 'cascade' }),
    logId: text('log_id')
      .notNull()
      .references(() => alarmLogs.id, { onDelete: 'cascade' }),
    /** The JSON sent, fixed when the entry was made. */
    body: text('body').notNull(),
    /** The attempt to make next, 1 = the first. */
    attempt: integer('attempt').notNull(),
    dueTime: ms('due_time').notNull(),
    /**
     * Cluster mode (docs/cluster.md §4): the node running the job and until when its claim holds; a job whose
     * claim has lapsed (its node died) is taken by another node. Null: nobody runs it now.
     */
    claimedBy: text('claimed_by'),
    claimUntil: ms('claim_until'),
    createTime: created(),
  },
  (t) => [index('notify_jobs_project_idx').on(t.projectId, t.id), index('notify_jobs_target_idx').on(t.targetId)],
);
