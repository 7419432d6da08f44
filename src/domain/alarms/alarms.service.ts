import type { Logger } from 'pino';
import type {
  AlarmLogFilter,
  AlarmLogRow,
  AlarmRuleRow,
  AlarmsRepository,
  NotificationTargetRow,
} from '../../db/repositories/alarms.repository.ts';
import type { AlarmCondition } from '../../db/schema/index.ts';
import { BadRequest, NotFound, StateConflict, type FieldError } from '../../errors.ts';
import { newId, randomToken } from '../../lib/ids.ts';
import type { Principal, Scope } from '../auth/principal.ts';
import type { EventBus } from '../events/event-bus.ts';
import { createAlarmEngine, type AlarmEntry } from './alarm-engine.ts';
import type { NotifyJobsRepository } from '../../db/repositories/notify-jobs.repository.ts';
import { AddressNotAllowed, type NetGuard } from '../../lib/net-guard.ts';
import { createNotifier, type NotifierSettings } from './notifier.ts';
import { createScheduler } from './scheduler.ts';

export const ALARM_LIMITS = {
  rulesPerProject: 1_000,
  /** Rules of one device type: each report of the type may be checked against all of them. */
  rulesPerType: 100,
  targetsPerProject: 20,
  deviceIds: 500,
  groupIds: 100,
  /** Longest persistence, offline or silence time: 30 days. */
  maxSeconds: 30 * 24 * 3600,
  messageMax: 512,
  noteMax: 1024,
};

export interface RuleInput {
  name: string;
  device_type_id: string;
  level: number;
  condition: AlarmCondition;
  device_ids?: string[];
  group_ids?: string[];
  message?: string;
  enabled?: boolean;
  suppress_seconds?: number;
}

export interface TargetInput {
  name: string;
  url: string;
  /** Omitted = generated; shown once, in the answer to the creation. */
  secret?: string;
  min_level?: number;
  enabled?: boolean;
}

export function ruleView(r: AlarmRuleRow) {
  return {
    id: r.id,
    name: r.name,
    device_type_id: r.deviceTypeId,
    enabled: r.enabled,
    level: r.level,
    condition: r.condition,
    device_ids: r.deviceIds,
    group_ids: r.groupIds,
    message: r.message,
    suppress_seconds: r.suppressSeconds,
    create_time: r.createTime,
    update_time: r.updateTime,
  };
}

/** An alarm-log entry as http-api.md §3 "Alarms" shows it, with the lifecycle fields we add. */
export function logView(log: AlarmLogRow, deviceName: string) {
  return {
    id: log.id,
    device_id: log.deviceId,
    alarm_status: log.alarmStatus,
    alarm_level: log.alarmLevel,
    alarm_info: log.alarmInfo,
    create_time: log.createTime,
    notify_logs: log.notifyLogs,
    device: { id: log.deviceId, name: deviceName },
    rule_id: log.ruleId,
    active: log.alarmStatus === 1 && log.endTime === null,
    end_time: log.endTime,
    trigger_id: log.triggerId,
    ack: log.ackTime !== null ? { by: log.ackBy ?? '', note: log.ackNote ?? '', time: log.ackTime } : null,
    clear: log.clearTime !== null ? { by: log.clearBy ?? '', note: log.clearNote ?? '', time: log.clearTime } : null,
  };
}

export function targetView(t: NotificationTargetRow) {
  return {
    id: t.id,
    name: t.name,
    kind: t.kind,
    url: t.url,
    min_level: t.minLevel,
    enabled: t.enabled,
    create_time: t.createTime,
    update_time: t.updateTime,
  };
}

const byOf = (p: Principal) => `${p.kind}:${p.subjectId}`;

/**
 * A webhook URL: http or https, nothing else (no file:, no data:), to a host whose every address the
 * guard allows (public unicast unless the operator allows the network). The WHATWG parser has already
 * turned `0x7f000001`, `2130706433`, `0177.1` or `127.1` into `127.0.0.1`.
 */
async function checkUrl(guard: NetGuard, url: string) {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new BadRequest('Invalid notification target: url is not a URL', [{ path: 'url', message: 'not a URL' }]);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    throw new BadRequest('Invalid notification target: url must be http or https', [
      { path: 'url', message: 'http or https only' },
    ]);
  try {
    await guard.check(parsed.hostname);
  } catch (err) {
    // A name that does not resolve gets the same answer as one resolving to a private address: the
    // server's resolver may know the private network's names, and their existence is not for tenants.
    const refused =
      err instanceof AddressNotAllowed && !err.viaName
        ? err.message
        : `host ${parsed.hostname} is not allowed: it must resolve to public addresses`;
    const message = `${refused} (loopback, private, link-local and other non-public addresses are refused)`;
    throw new BadRequest(`Invalid notification target: url: ${message}`, [{ path: 'url', message }]);
  }
}

function invalid(errors: FieldError[]): never {
  throw new BadRequest(`Invalid alarm rule: ${errors[0]!.path}: ${errors[0]!.message}`, errors);
}

/** Checks what a schema cannot: operators against value types, ranges, limits (the service is also called directly). */
export function checkCondition(c: AlarmCondition): void {
  const e = (path: string, message: string) => invalid([{ path: `condition.${path}`, message }]);
  const seconds = (v: unknown, path: string, min: number) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > ALARM_LIMITS.maxSeconds)
      e(path, `an integer from ${min} to ${ALARM_LIMITS.maxSeconds}`);
  };
  if (c.kind === 'offline') return seconds(c.for_seconds, 'for_seconds', 0);
  if (c.kind === 'silence') return seconds(c.seconds, 'seconds', 1);
  if (c.kind !== 'attribute') e('kind', 'attribute, offline or silence');
  if (typeof c.identifier !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(c.identifier))
    e('identifier', 'an attribute identifier');
  if (c.for_seconds !== undefined) seconds(c.for_seconds, 'for_seconds', 0);
  switch (c.op) {
    case '>':
    case '>=':
    case '<':
    case '<=':
      if (typeof c.value !== 'number' || !Number.isFinite(c.value)) e('value', `${c.op} compares with a number`);
      return;
    case 'between':
    case 'outside':
      if (typeof c.min !== 'number' || typeof c.max !== 'number' || !Number.isFinite(c.min) || !Number.isFinite(c.max))
        e('min', `${c.op} needs numbers min and max`);
      if (c.min! > c.max!) e('max', 'must not be less than min');
      return;
    case '==':
    case '!=':
      if (!['number', 'boolean', 'string'].includes(typeof c.value))
        e('value', `${c.op} compares with a number, a boolean or a string`);
      if (typeof c.value === 'string' && c.value.length > 256) e('value', 'at most 256 characters');
      return;
    case 'change':
      if (c.for_seconds) e('for_seconds', 'change has no persistence window');
      return;
    default:
      e('op', 'one of >, >=, <, <=, between, outside, ==, !=, change');
  }
}

/** Only the fields of the condition's kind are kept (no stray input is stored). */
function normalize(c: AlarmCondition): AlarmCondition {
  if (c.kind === 'offline') return { kind: 'offline', for_seconds: c.for_seconds };
  if (c.kind === 'silence') return { kind: 'silence', seconds: c.seconds };
  const out: AlarmCondition = { kind: 'attribute', identifier: c.identifier, op: c.op };
  if (c.op === 'between' || c.op === 'outside') Object.assign(out, { min: c.min, max: c.max });
  else if (c.op !== 'change') out.value = c.value;
  if (c.for_seconds) out.for_seconds = c.for_seconds;
  return out;
}

export interface AlarmsDeps {
  repo: AlarmsRepository;
  bus: EventBus;
  clock?: () => number;
  logger: Pick<Logger, 'error' | 'warn' | 'info'>;
  /** Told when a device's alarm state changed (the devices service's stats cache). */
  onStateChanged?: (projectId: string) => void;
  isOnline?: (deviceId: string) => boolean;
  notifier?: Partial<NotifierSettings>;
  /** Webhook deliveries not yet done. */
  jobs: NotifyJobsRepository;
  deviceMetaTtlMs?: number;
  /** How long a project's rules are reused before they are read again (ms; see the alarm engine). */
  rulesTtlMs?: number;
  /** Rules whose timers are rebuilt at once at start-up (see the alarm engine). */
  recoveryConcurrency?: number;
}

/**
 * The alarm system (README "Alarms"): rules, the evaluator, the alarm log with acknowledge and clear,
 * notification targets and their deliveries. `start()` rebuilds from the database and starts the
 * timers; `stop()` ends them.
 */
export function createAlarmsService({
  repo,
  bus,
  clock = Date.now,
  logger,
  onStateChanged = () => {},
  isOnline,
  notifier: notifierSettings,
  jobs,
  deviceMetaTtlMs,
  rulesTtlMs,
  recoveryConcurrency,
}: AlarmsDeps) {
  const scheduler = createScheduler({ clock, onError: (err) => logger.error({ err }, 'alarm timer failed') });
  const notifier = createNotifier({
    repo,
    jobs,
    scheduler,
    clock,
    logger,
    ...(notifierSettings ? { settings: notifierSettings } : {}),
  });
  const onEntry = (projectId: string, entry: AlarmEntry) => {
    onStateChanged(projectId);
    const { log } = entry;
    bus.emit('device.alarm', {
      projectId,
      deviceId: log.deviceId,
      alarm: { id: log.id, status: log.alarmStatus, level: log.alarmLevel, info: log.alarmInfo, ts: log.createTime },
    });
    notifier.notify(projectId, entry);
  };
  const engine = createAlarmEngine({
    repo,
    bus,
    scheduler,
    clock,
    logger,
    onEntry,
    ...(isOnline ? { isOnline } : {}),
    ...(deviceMetaTtlMs !== undefined ? { deviceMetaTtlMs } : {}),
    ...(rulesTtlMs !== undefined ? { rulesTtlMs } : {}),
    ...(recoveryConcurrency !== undefined ? { recoveryConcurrency } : {}),
  });
  engine.attach();

  async function mustRule(scope: Scope, id: string) {
    const r = await repo.getRule(scope.projectId, id);
    if (!r) throw new NotFound('Alarm rule');
    return r;
  }

  /** `current`: the stored rule `input` patches (its type or its devices may change alone). */
  async function checkRulesOfType(scope: Scope, typeId: string) {
    if ((await repo.listRules(scope.projectId, typeId, 1, 0)).total >= ALARM_LIMITS.rulesPerType) {
      throw new StateConflict(`A device type has at most ${ALARM_LIMITS.rulesPerType} alarm rules`);
    }
  }

  async function checkRefs(scope: Scope, input: Partial<RuleInput>, current?: AlarmRuleRow) {
    if (input.device_type_id !== undefined && !(await repo.typeInProject(scope.projectId, input.device_type_id)))
      throw new NotFound('Device type');
    let listed: Array<{ id: string; typeId: string | null }> = [];
    const existingDevices = async (projectId: string, ids: string[]) =>
      (listed = await repo.deviceTypesOf(projectId, ids)).map((d) => d.id);
    for (const [key, ids, exists, what] of [
      ['device_ids', input.device_ids, existingDevices, 'Device'],
      ['group_ids', input.group_ids, repo.existingGroupIds, 'Device group'],
    ] as const) {
      if (!ids?.length) continue;
      const max = key === 'device_ids' ? ALARM_LIMITS.deviceIds : ALARM_LIMITS.groupIds;
      if (ids.length > max) invalid([{ path: key, message: `at most ${max}` }]);
      const found = new Set(await exists(scope.projectId, [...new Set(ids)]));
      const missing = ids.filter((i) => !found.has(i));
      if (missing.length) throw new NotFound(`${what} ${missing.join(', ')}`);
    }
    // A rule watches devices of its type only: listed devices of another type would never be evaluated.
    const typeId = input.device_type_id ?? current?.deviceTypeId;
    if (input.device_ids === undefined && input.device_type_id !== undefined && current?.deviceIds.length)
      listed = await repo.deviceTypesOf(scope.projectId, current.deviceIds);
    const otherType = listed.filter((d) => d.typeId !== typeId).map((d) => d.id);
    if (otherType.length)
      invalid([{ path: 'device_ids', message: `not of device type ${typeId}: ${otherType.join(', ')}` }]);
    if (input.level !== undefined && ![1, 2, 3].includes(input.level))
      invalid([{ path: 'level', message: '1 (normal), 2 (serious) or 3 (urgent)' }]);
    if (
      input.suppress_seconds !== undefined &&
      (!Number.isInteger(input.suppress_seconds) ||
        input.suppress_seconds < 0 ||
        input.suppress_seconds > ALARM_LIMITS.maxSeconds)
    ) {
      invalid([{ path: 'suppress_seconds', message: `an integer from 0 to ${ALARM_LIMITS.maxSeconds}` }]);
    }
    if (input.message !== undefined && input.message.length > ALARM_LIMITS.messageMax)
      invalid([{ path: 'message', message: `at most ${ALARM_LIMITS.messageMax} characters` }]);
    if (input.condition !== undefined) checkCondition(input.condition);
  }

  async function mustLog(scope: Scope, id: string) {
    const row = await repo.getLog(scope, id);
    if (!row) throw new NotFound('Alarm log entry');
    return row;
  }

  return {
    engine,
    notifier,
    scheduler,

    rules: {
      async list(scope: Scope, typeId: string | undefined, page: number, pageRecords: number) {
        const { rows, total } = await repo.listRules(scope.projectId, typeId, pageRecords, (page - 1) * pageRecords);
        return { items: rows.map(ruleView), total, page_total: Math.ceil(total / pageRecords) };
      },

      async get(scope: Scope, id: string) {
        return ruleView(await mustRule(scope, id));
      },

      async create(scope: Scope, input: RuleInput) {
        await checkRefs(scope, input);
        if ((await repo.listRules(scope.projectId, undefined, 1, 0)).total >= ALARM_LIMITS.rulesPerProject) {
          throw new StateConflict(`A project has at most ${ALARM_LIMITS.rulesPerProject} alarm rules`);
        }
        await checkRulesOfType(scope, input.device_type_id);
        const now = clock();
        const row = {
          id: newId(now),
          projectId: scope.projectId,
          deviceTypeId: input.device_type_id,
          name: input.name,
          enabled: input.enabled ?? true,
          level: input.level,
          condition: normalize(input.condition),
          deviceIds: [...new Set(input.device_ids ?? [])],
          groupIds: [...new Set(input.group_ids ?? [])],
          message: input.message ?? '',
          suppressSeconds: input.suppress_seconds ?? 0,
          createTime: now,
          updateTime: now,
        };
        await repo.insertRule(row);
        await engine.ruleChanged(scope.projectId, row.id, row);
        return ruleView(row);
      },

      async update(scope: Scope, id: string, patch: Partial<RuleInput>) {
        const before = await mustRule(scope, id);
        await checkRefs(scope, patch, before);
        if (patch.device_type_id !== undefined && patch.device_type_id !== before.deviceTypeId)
          await checkRulesOfType(scope, patch.device_type_id);
        await repo.updateRule(scope.projectId, id, {
          ...(patch.name !== undefined ? { name: patch.name } : {}),
          ...(patch.device_type_id !== undefined ? { deviceTypeId: patch.device_type_id } : {}),
          ...(patch.level !== undefined ? { level: patch.level } : {}),
          ...(patch.condition !== undefined ? { condition: normalize(patch.condition) } : {}),
          ...(patch.device_ids !== undefined ? { deviceIds: [...new Set(patch.device_ids)] } : {}),
          ...(patch.group_ids !== undefined ? { groupIds: [...new Set(patch.group_ids)] } : {}),
          ...(patch.message !== undefined ? { message: patch.message } : {}),
          ...(patch.enabled !== undefined ? { enabled: patch.enabled } : {}),
          ...(patch.suppress_seconds !== undefined ? { suppressSeconds: patch.suppress_seconds } : {}),
          updateTime: clock(),
        });
        const row = await mustRule(scope, id);
        await engine.ruleChanged(scope.projectId, id, row);
        return ruleView(row);
      },

      /** Deletes the rule; its active alarms end (`reason: rule_deleted`), its log stays. */
      async delete(scope: Scope, id: string) {
        await mustRule(scope, id);
        await repo.deleteRule(scope.projectId, id);
        await engine.ruleChanged(scope.projectId, id, undefined);
      },
    },

    logs: {
      async list(scope: Scope, filter: AlarmLogFilter, page: number, pageRecords: number) {
        const offset = (page - 1) * pageRecords;
        const { rows, total } = await repo.listLogs(scope, filter, pageRecords, offset);
        return {
          items: rows.map((r) => logView(r.log, r.deviceName)),
          total,
          page_total: Math.ceil(total / pageRecords),
        };
      },

      async get(scope: Scope, id: string) {
        const { log, deviceName } = await mustLog(scope, id);
        return logView(log, deviceName);
      },

      /** Records that an operator saw an alarm; the alarm stays active. */
      async acknowledge(principal: Principal, scope: Scope, id: string, note: string) {
        const { log } = await mustLog(scope, id);
        if (log.alarmStatus !== 1) throw new StateConflict('Only a trigger entry (alarm_status 1) can be acknowledged');
        if (log.ackTime !== null) throw new StateConflict('The alarm is already acknowledged');
        if (!(await repo.acknowledge(scope.projectId, id, byOf(principal), note, clock())))
          throw new StateConflict('The alarm is already acknowledged');
        return this.get(scope, id);
      },

      /** Ends an active alarm by hand: an `alarm_status` 0 entry with who and why; it re-arms once its condition stops holding. */
      async clear(principal: Principal, scope: Scope, id: string, note: string) {
        const { log, deviceName } = await mustLog(scope, id);
        if (log.alarmStatus !== 1) throw new StateConflict('Only a trigger entry (alarm_status 1) can be cleared');
        if (log.endTime !== null) throw new StateConflict('The alarm is no longer active');
        const entry = await engine.clear(log, deviceName, byOf(principal), note);
        if (!entry) throw new StateConflict('The alarm is no longer active');
        return logView(entry, deviceName);
      },
    },

    targets: {
      async list(scope: Scope) {
        return { items: (await repo.listTargets(scope.projectId)).map(targetView) };
      },

      async get(scope: Scope, id: string) {
        const t = await repo.getTarget(scope.projectId, id);
        if (!t) throw new NotFound('Notification target');
        return targetView(t);
      },

      async create(scope: Scope, input: TargetInput) {
        await checkUrl(notifier.guard, input.url);
        if ((await repo.countTargets(scope.projectId)) >= ALARM_LIMITS.targetsPerProject) {
          throw new StateConflict(`A project has at most ${ALARM_LIMITS.targetsPerProject} notification targets`);
        }
        const now = clock();
        const secret = input.secret ?? randomToken(32);
        const row = {
          id: newId(now),
          projectId: scope.projectId,
          name: input.name,
          kind: 'webhook',
          url: input.url,
          secret,
          minLevel: input.min_level ?? 1,
          enabled: input.enabled ?? true,
          createTime: now,
          updateTime: now,
        };
        await repo.insertTarget(row);
        notifier.targetsChanged(scope.projectId);
        return { ...targetView(row), secret };
      },

      async update(scope: Scope, id: string, patch: Partial<TargetInput>) {
        await this.get(scope, id);
        if (patch.url !== undefined) await checkUrl(notifier.guard, patch.url);
        await repo.updateTarget(scope.projectId, id, {
          ...(patch.name !== undefined ? { name: patch.name } : {}),
          ...(patch.url !== undefined ? { url: patch.url } : {}),
          ...(patch.secret !== undefined ? { secret: patch.secret } : {}),
          ...(patch.min_level !== undefined ? { minLevel: patch.min_level } : {}),
          ...(patch.enabled !== undefined ? { enabled: patch.enabled } : {}),
          updateTime: clock(),
        });
        // A disabled target's queued and waiting deliveries are dropped.
        if (patch.enabled === false) await notifier.targetRemoved(scope.projectId, id);
        else notifier.targetsChanged(scope.projectId);
        return this.get(scope, id);
      },

      async delete(scope: Scope, id: string) {
        await this.get(scope, id);
        await repo.deleteTarget(scope.projectId, id);
        await notifier.targetRemoved(scope.projectId, id);
      },
    },

    /** Rebuilds active alarms and timers from the database, then runs the timers on the real clock. */
    async start() {
      await engine.recover();
      await notifier.recover();
      scheduler.start();
    },

    /** Stops the timers and waits for evaluations and running deliveries. */
    async stop() {
      scheduler.stop();
      engine.detach();
      await engine.idle();
      await notifier.stop();
    },

    /** Resolves when evaluations and deliveries in progress are done (tests). */
    async idle() {
      await engine.idle();
      await notifier.idle();
    },
  };
}
export type Alarms = ReturnType<typeof createAlarmsService>;
