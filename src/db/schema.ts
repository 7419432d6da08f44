import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  smallint,
  text,
  uniqueIndex,
  customType,
  type AnyPgColumn,
} from 'drizzle-orm/pg-core';

/** Times are milliseconds since the epoch, as the API speaks them (http-api.md §1). */
const ms = (name: string) => bigint(name, { mode: 'number' });
/** Raw bytes; PGlite hands back a Uint8Array, postgres.js a Buffer: both are read as Buffer. */
const bytea = customType<{ data: Buffer; driverData: Uint8Array }>({
  dataType: () => 'bytea',
  fromDriver: (value) => Buffer.from(value.buffer, value.byteOffset, value.byteLength),
});
const tags = () => jsonb('tags').$type<Record<string, string>>().notNull().default({});
const projectRef = () =>
  text('project_id')
    .notNull()
    .references(() => projects.id, { onDelete: 'cascade' });
const created = () => ms('create_time').notNull();
const updated = () => ms('update_time').notNull();
/** When the secret or password last changed: tokens issued before it are refused. */
const credentialsTime = () => ms('credentials_time').notNull().default(0);

export const projects = pgTable('projects', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  descr: text('descr').notNull().default(''),
  tags: tags(),
  /** Given to every device of the project; the device protocol sends it in clear, so it is stored in clear. */
  projectKey: text('project_key').notNull().unique(),
  /** Application-subscription identity (device-protocol.md §9); the secret is hashed. */
  viewKey: text('view_key').unique(),
  viewSecretHash: text('view_secret_hash'),
  /** Maximum number of devices; null = unlimited (device-protocol.md §4). */
  deviceQuota: integer('device_quota'),
  /** Messages per second one device may send (device-protocol.md §3); null = the server's MQTT_RATE_LIMIT. */
  deviceRateLimit: integer('device_rate_limit'),
  /** Days of attribute history and data-stream messages kept; null = the server's HISTORY_RETENTION_DAYS, 0 = forever. */
  historyRetentionDays: integer('history_retention_days'),
  /** Shortest customer password the project accepts (6–128); null = the server's 8. */
  customerPasswordMinLength: integer('customer_password_min_length'),
  createTime: created(),
  updateTime: updated(),
});

export const apiApps = pgTable(
  'api_apps',
  {
    id: text('id').primaryKey(),
    projectId: projectRef(),
    name: text('name').notNull(),
    accessKey: text('access_key').notNull(),
    secretHash: text('secret_hash').notNull(),
    credentialsTime: credentialsTime(),
    createTime: created(),
  },
  (t) => [index('api_apps_project_idx').on(t.projectId)],
);

export const admins = pgTable(
  'admins',
  {
    id: text('id').primaryKey(),
    projectId: projectRef(),
    account: text('account').notNull(),
    name: text('name').notNull().default(''),
    email: text('email').notNull().default(''),
    tags: tags(),
    passwordHash: text('password_hash').notNull(),
    credentialsTime: credentialsTime(),
    createTime: created(),
    updateTime: updated(),
  },
  (t) => [uniqueIndex('admins_project_account_uq').on(t.projectId, t.account)],
);

export const customers = pgTable(
  'customers',
  {
    id: text('id').primaryKey(),
    projectId: projectRef(),
    account: text('account').notNull(),
    passwordHash: text('password_hash').notNull(),
    name: text('name').notNull(),
    descr: text('descr').notNull().default(''),
    email: text('email').notNull().default(''),
    mobile: text('mobile').notNull().default(''),
    tags: tags(),
    locale: text('locale').notNull().default('en'),
    credentialsTime: credentialsTime(),
    createTime: created(),
    updateTime: updated(),
  },
  (t) => [
    uniqueIndex('customers_project_account_uq').on(t.projectId, t.account),
    index('customers_project_id_idx').on(t.projectId, t.id),
  ],
);

export const deviceTypes = pgTable(
  'device_types',
  {
    id: text('id').primaryKey(),
    projectId: projectRef(),
    name: text('name').notNull(),
    descr: text('descr').notNull().default(''),
    tags: tags(),
    typeKey: text('type_key').notNull().unique(),
    /** "1" direct device, "2" gateway sub-device, "3" gateway (device-protocol.md §4). */
    connType: text('conn_type').notNull().default('1'),
    connProtocol: text('conn_protocol').notNull().default('mqtt'),
    allowAutoCreate: boolean('allow_auto_create').notNull().default(false),
    /** Raw TCP (device-protocol.md §6): a keep-alive string the device sends, never recorded; null = none. */
    tcpHeartbeat: text('tcp_heartbeat'),
    /** Raw TCP: bytes arriving within this many ms of each other form one message; null = the server's default. */
    tcpFrameGapMs: integer('tcp_frame_gap_ms'),
    createTime: created(),
    updateTime: updated(),
  },
  (t) => [index('device_types_project_idx').on(t.projectId, t.id)],
);

export const attributeModels = pgTable(
  'attribute_models',
  {
    id: text('id').primaryKey(),
    projectId: projectRef(),
    deviceTypeId: text('device_type_id')
      .notNull()
      .references(() => deviceTypes.id, { onDelete: 'cascade' }),
    identifier: text('identifier').notNull(),
    name: text('name').notNull(),
    dataType: text('data_type').notNull(),
    unit: text('unit').notNull().default(''),
    options: jsonb('options').$type<Record<string, unknown>>().notNull().default({}),
    createTime: created(),
    updateTime: updated(),
  },
  (t) => [uniqueIndex('attribute_models_type_ident_uq').on(t.deviceTypeId, t.identifier)],
);

export const dataStreams = pgTable(
  'data_streams',
  {
    id: text('id').primaryKey(),
    projectId: projectRef(),
    deviceTypeId: text('device_type_id')
      .notNull()
      .references(() => deviceTypes.id, { onDelete: 'cascade' }),
    identifier: text('identifier').notNull(),
    name: text('name').notNull(),
    /** hex (binary), text or json (device-protocol.md §7). */
    format: text('format').notNull(),
    tcpBound: boolean('tcp_bound').notNull().default(false),
    mapToAttributes: boolean('map_to_attributes').notNull().default(false),
    createTime: created(),
    updateTime: updated(),
  },
  (t) => [uniqueIndex('data_streams_type_ident_uq').on(t.deviceTypeId, t.identifier)],
);

export const extendInfoDefs = pgTable(
  'extend_info_defs',
  {
    id: text('id').primaryKey(),
    projectId: projectRef(),
    deviceTypeId: text('device_type_id')
      .notNull()
      .references(() => deviceTypes.id, { onDelete: 'cascade' }),
    infoType: text('info_type').notNull(),
    name: text('name').notNull(),
    descr: text('descr').notNull().default(''),
    enabled: boolean('enabled').notNull().default(true),
    options: jsonb('options').$type<Record<string, unknown>>().notNull().default({}),
    createTime: created(),
    updateTime: updated(),
  },
  (t) => [index('extend_info_defs_type_idx').on(t.deviceTypeId)],
);

export const deviceGroups = pgTable(
  'device_groups',
  {
    id: text('id').primaryKey(),
    projectId: projectRef(),
    parentId: text('parent_id').references((): AnyPgColumn => deviceGroups.id, { onDelete: 'restrict' }),
    name: text('name').notNull(),
    descr: text('descr').notNull().default(''),
    tags: tags(),
    createTime: created(),
    updateTime: updated(),
  },
  (t) => [
    index('device_groups_project_parent_idx').on(t.projectId, t.parentId),
    // The ON DELETE RESTRICT check of a parent looks children up by parent alone.
    index('device_groups_parent_idx').on(t.parentId),
  ],
);

export interface AlarmState {
  level: number;
  since: number;
  rule: string | null;
}

export const devices = pgTable(
  'devices',
  {
    id: text('id').primaryKey(),
    projectId: projectRef(),
    typeId: text('type_id').references(() => deviceTypes.id, { onDelete: 'restrict' }),
    name: text('name').notNull(),
    descr: text('descr').notNull().default(''),
    deviceKey: text('device_key'),
    /** The device's own credential; the API serves it back (certificate), so it is kept retrievable. */
    accessToken: text('access_token').notNull().unique(),
    viewToken: text('view_token').notNull().unique(),
    deviceCode: text('device_code').notNull(),
    tags: tags(),
    disabled: boolean('disabled').notNull().default(false),
    online: boolean('online').notNull().default(false),
    /** Ever connected or reported (http-api.md §3 devices_stat). */
    active: boolean('active').notNull().default(false),
    /** Latest time of each kind of message (device-protocol.md §11). */
    activeTs: jsonb('active_ts').$type<Record<string, number>>().notNull().default({}),
    /** 0 = normal; 1 normal alarm, 2 serious, 3 urgent. */
    alarmLevel: smallint('alarm_level').notNull().default(0),
    alarm: jsonb('alarm').$type<AlarmState | null>(),
    /** A gateway sub-device (device-protocol.md §8): its gateway, and its address unique within it. */
    gatewayId: text('gateway_id').references((): AnyPgColumn => devices.id, { onDelete: 'set null' }),
    subAddress: text('sub_address'),
    createTime: created(),
    updateTime: updated(),
  },
  (t) => [
    uniqueIndex('devices_gateway_address_uq')
      .on(t.gatewayId, t.subAddress)
      .where(sql`gateway_id is not null`),
    // Ids are time-ordered, so (project_id, id) serves "newest first" paging of the device list.
    index('devices_project_id_idx').on(t.projectId, t.id),
    index('devices_project_type_id_idx').on(t.projectId, t.typeId, t.id),
    // The ON DELETE RESTRICT check of a device type looks devices up by type alone.
    index('devices_type_idx').on(t.typeId),
    uniqueIndex('devices_project_device_key_uq')
      .on(t.projectId, t.deviceKey)
      .where(sql`device_key is not null`),
    uniqueIndex('devices_project_code_uq').on(t.projectId, t.deviceCode),
    // Covers devices_stat / devices_alarm_stat as an index-only scan.
    index('devices_project_state_idx').on(t.projectId, t.online, t.active, t.alarmLevel),
  ],
);

export const deviceGroupMembers = pgTable(
  'device_group_members',
  {
    groupId: text('group_id')
      .notNull()
      .references(() => deviceGroups.id, { onDelete: 'cascade' }),
    deviceId: text('device_id')
      .notNull()
      .references(() => devices.id, { onDelete: 'cascade' }),
    projectId: projectRef(),
  },
  (t) => [primaryKey({ columns: [t.groupId, t.deviceId] }), index('device_group_members_device_idx').on(t.deviceId)],
);

export const customerDevices = pgTable(
  'customer_devices',
  {
    customerId: text('customer_id')
      .notNull()
      .references(() => customers.id, { onDelete: 'cascade' }),
    deviceId: text('device_id')
      .notNull()
      .references(() => devices.id, { onDelete: 'cascade' }),
    projectId: projectRef(),
    createTime: created(),
  },
  (t) => [primaryKey({ columns: [t.customerId, t.deviceId] }), index('customer_devices_device_idx').on(t.deviceId)],
);

/** Values of a device's extended information: standard infos (by type name) and type-defined ones (by id). */
export const deviceInfos = pgTable(
  'device_infos',
  {
    deviceId: text('device_id')
      .notNull()
      .references(() => devices.id, { onDelete: 'cascade' }),
    infoId: text('info_id').notNull(),
    projectId: projectRef(),
    value: jsonb('value').$type<unknown>().notNull(),
    createTime: created(),
    updateTime: updated(),
  },
  (t) => [
    primaryKey({ columns: [t.deviceId, t.infoId] }),
    // Deleting an info definition removes its values across the project's devices.
    index('device_infos_project_info_idx').on(t.projectId, t.infoId),
  ],
);

/** Current value of each attribute of a device (device-protocol.md §3; history is the telemetry issue). */
export const attributeValues = pgTable(
  'attribute_values',
  {
    deviceId: text('device_id')
      .notNull()
      .references(() => devices.id, { onDelete: 'cascade' }),
    identifier: text('identifier').notNull(),
    projectId: projectRef(),
    value: jsonb('value').$type<unknown>().notNull(),
    /** Where the value came from: `report` by the device, `push` to it, `cloud` attribute (http-api.md §3). */
    attrType: text('attr_type').notNull(),
    /** number | boolean | string | object | array */
    dataType: text('data_type').notNull(),
    ts: ms('ts').notNull(),
  },
  (t) => [primaryKey({ columns: [t.deviceId, t.identifier] })],
);

/** Events reported by devices (`event/report/<id>`): logged, not written into attributes. */
export const deviceEvents = pgTable(
  'device_events',
  {
    id: text('id').primaryKey(),
    projectId: projectRef(),
    deviceId: text('device_id')
      .notNull()
      .references(() => devices.id, { onDelete: 'cascade' }),
    method: text('method').notNull(),
    params: jsonb('params').$type<unknown>().notNull().default({}),
    ts: ms('ts').notNull(),
  },
  (t) => [index('device_events_device_id_idx').on(t.deviceId, t.id)],
);

export type CommandState = 'queued' | 'sent' | 'replied' | 'timeout' | 'expired' | 'failed';

/** Every command sent to a device, stored before it is sent (device-protocol.md §10). */
export const commands = pgTable(
  'commands',
  {
    id: text('id').primaryKey(),
    projectId: projectRef(),
    deviceId: text('device_id')
      .notNull()
      .references(() => devices.id, { onDelete: 'cascade' }),
    /** The `<id>` of `command/send/<id>` and of the body: an integer, unique among the device's open commands. */
    seq: bigint('seq', { mode: 'number' }).notNull(),
    method: text('method').notNull(),
    params: jsonb('params').$type<unknown>().notNull().default({}),
    state: text('state').$type<CommandState>().notNull(),
    /** A queued command is delivered on the device's next connect until this time; then it expires. */
    expireTime: ms('expire_time'),
    /** How long a sent command waits for its reply before it times out. */
    replyTimeoutMs: integer('reply_timeout_ms').notNull(),
    reply: jsonb('reply').$type<unknown>(),
    error: text('error'),
    createTime: created(),
    sentTime: ms('sent_time'),
    replyTime: ms('reply_time'),
    updateTime: updated(),
  },
  (t) => [
    index('commands_project_device_id_idx').on(t.projectId, t.deviceId, t.id),
    index('commands_open_idx')
      .on(t.deviceId, t.state)
      .where(sql`state in ('queued', 'sent')`),
    uniqueIndex('commands_open_seq_uq')
      .on(t.deviceId, t.seq)
      .where(sql`state in ('queued', 'sent')`),
  ],
);

/** Every custom-data-stream message, up or down (device-protocol.md §7). */
export const dataMessages = pgTable(
  'data_messages',
  {
    /** Time-ordered: pages newest first by id. */
    id: text('id').primaryKey(),
    projectId: projectRef(),
    deviceId: text('device_id')
      .notNull()
      .references(() => devices.id, { onDelete: 'cascade' }),
    identifier: text('identifier').notNull(),
    /** `up` from the device, `down` to it. */
    direction: text('direction').$type<'up' | 'down'>().notNull(),
    /** mqtt | tcp */
    transport: text('transport').$type<'mqtt' | 'tcp'>().notNull(),
    payload: bytea('payload').notNull(),
    ts: ms('ts').notNull(),
  },
  (t) => [
    index('data_messages_device_stream_idx').on(t.deviceId, t.identifier, t.id),
    index('data_messages_project_ts_idx').on(t.projectId, t.ts),
  ],
);

/**
 * Durable markers of the telemetry pipeline: `current_values` = every fresh report committed before
 * this time has its current value flushed (src/domain/telemetry/current-cache.ts recovers the rest
 * from history after a crash).
 */
export const telemetryCheckpoints = pgTable('telemetry_checkpoints', {
  name: text('name').primaryKey(),
  ts: ms('ts').notNull(),
});

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
    createTime: created(),
  },
  (t) => [index('notify_jobs_project_idx').on(t.projectId, t.id), index('notify_jobs_target_idx').on(t.targetId)],
);

/**
 * Batches of the ingest pipeline that committed, by id, written in the batch's own statement or
 * transaction (src/domain/telemetry/ingest.ts): when the connection is lost between the commit and its
 * answer, the retry asks here instead of writing the batch twice. Kept an hour (the retention job).
 */
export const ingestCommits = pgTable('ingest_commits', {
  id: text('id').primaryKey(),
  createTime: ms('create_time').notNull(),
});
