import type { Logger } from 'pino';
import type { AlarmLogFilter, AlarmRuleRow, AlarmsRepository } from '../../db/repositories/alarms.repository.ts';
import type { AlarmCondition } from '../../db/schema/index.ts';
import { NotFound, StateConflict } from '../../errors.ts';
import { newId, randomToken } from '../../lib/ids.ts';
import type { Principal, Scope } from '../auth/principal.ts';
import type { EventBus } from '../events/event-bus.ts';
import { createAlarmEngine, type AlarmEntry, type AlarmOwnership } from './alarm-engine.ts';
import type { NotifyJobsRepository } from '../../db/repositories/notify-jobs.repository.ts';
import type { MetricsPort } from '../metrics-port.ts';
import { createNotifier, type NotifierSettings } from './notifier.ts';
import { createScheduler } from './scheduler.ts';
import { ALARM_LIMITS, checkCondition, checkWebhookUrl, invalidRule, normalizeCondition } from './validation.ts';
import { logView, ruleView, targetView } from './views.ts';

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

const byOf = (p: Principal) => `${p.kind}:${p.subjectId}`;

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
  /**
   * Cluster mode (docs/cluster.md §4): this node's id (the origin of the rule, clear and target events the
   * other nodes apply to their caches, and its webhook job claims), how long a job claim holds, and which
   * devices' connection and silence timers run here. Unset: one node.
   */
  cluster?: { node: string; claimMs: number; ownership: AlarmOwnership };
  /** Counts alarms raised and ended and webhook deliveries (docs/metrics.md); unset = not counted. */
  metrics?: Pick<MetricsPort, 'alarmRaised' | 'alarmCleared' | 'webhookDelivery'>;
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
  cluster,
  metrics,
}: AlarmsDeps) {
  const origin = cluster?.node ?? 'local';
  const scheduler = createScheduler({ clock, onError: (err) => logger.error({ err }, 'alarm timer failed') });
  const notifier = createNotifier({
    repo,
    jobs,
    scheduler,
    clock,
    logger,
    ...(notifierSettings ? { settings: notifierSettings } : {}),
    ...(cluster ? { claims: { node: cluster.node, claimMs: cluster.claimMs } } : {}),
    ...(metrics ? { metrics } : {}),
  });
  const onEntry = (projectId: string, entry: AlarmEntry) => {
    onStateChanged(projectId);
    const { log } = entry;
    // A trigger entry (alarm_status 1) raises an alarm; every other entry ends one.
    if (log.alarmStatus === 1) metrics?.alarmRaised();
    else metrics?.alarmCleared();
    bus.emit('device.alarm', {
      projectId,
      deviceId: log.deviceId,
      alarm: { id: log.id, status: log.alarmStatus, level: log.alarmLevel, info: log.alarmInfo, ts: log.createTime },
    });
    notifier.notify(projectId, entry);
    if (cluster) bus.emit('alarm.changed', { projectId, deviceId: log.deviceId, origin });
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
    ...(cluster ? { ownership: cluster.ownership } : {}),
  });
  engine.attach();
  // Changes made on another node reach this node's caches (docs/cluster.md §4); its own are applied already.
  const offRemote = [
    bus.on('alarm_rule.changed', ({ projectId, ruleId, origin: from }) => {
      if (from === origin) return;
      engine
        .ruleChangedElsewhere(projectId, ruleId)
        .catch((err: unknown) => logger.error({ err, ruleId }, 'alarm rule change from another node not applied'));
    }),
    bus.on('alarm.cleared', ({ deviceId, ruleId, logId, origin: from }) => {
      if (from !== origin) void engine.clearedElsewhere(deviceId, ruleId, logId);
    }),
    bus.on('alarm.changed', ({ deviceId, origin: from }) => {
      if (from !== origin) void engine.changedElsewhere(deviceId);
    }),
    bus.on('notification_target.changed', ({ projectId, targetId, removed, origin: from }) => {
      if (from === origin) return;
      if (!removed) return notifier.targetsChanged(projectId);
      notifier
        .targetRemoved(projectId, targetId, { stored: false })
        .catch((err: unknown) => logger.error({ err, targetId }, 'notification target removal not applied'));
    }),
  ];
  let started = false;
  const ruleChanged = async (projectId: string, ruleId: string, rule: AlarmRuleRow | undefined) => {
    await engine.ruleChanged(projectId, ruleId, rule);
    bus.emit('alarm_rule.changed', { projectId, ruleId, origin });
  };
  const targetChanged = (projectId: string, targetId: string, removed: boolean) =>
    bus.emit('notification_target.changed', { projectId, targetId, removed, origin });

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
      if (ids.length > max) invalidRule([{ path: key, message: `at most ${max}` }]);
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
      invalidRule([{ path: 'device_ids', message: `not of device type ${typeId}: ${otherType.join(', ')}` }]);
    if (input.level !== undefined && ![1, 2, 3].includes(input.level))
      invalidRule([{ path: 'level', message: '1 (normal), 2 (serious) or 3 (urgent)' }]);
    if (
      input.suppress_seconds !== undefined &&
      (!Number.isInteger(input.suppress_seconds) ||
        input.suppress_seconds < 0 ||
        input.suppress_seconds > ALARM_LIMITS.maxSeconds)
    ) {
      invalidRule([{ path: 'suppress_seconds', message: `an integer from 0 to ${ALARM_LIMITS.maxSeconds}` }]);
    }
    if (input.message !== undefined && input.message.length > ALARM_LIMITS.messageMax)
      invalidRule([{ path: 'message', message: `at most ${ALARM_LIMITS.messageMax} characters` }]);
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
          condition: normalizeCondition(input.condition),
          deviceIds: [...new Set(input.device_ids ?? [])],
          groupIds: [...new Set(input.group_ids ?? [])],
          message: input.message ?? '',
          suppressSeconds: input.suppress_seconds ?? 0,
          createTime: now,
          updateTime: now,
        };
        await repo.insertRule(row);
        await ruleChanged(scope.projectId, row.id, row);
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
          ...(patch.condition !== undefined ? { condition: normalizeCondition(patch.condition) } : {}),
          ...(patch.device_ids !== undefined ? { deviceIds: [...new Set(patch.device_ids)] } : {}),
          ...(patch.group_ids !== undefined ? { groupIds: [...new Set(patch.group_ids)] } : {}),
          ...(patch.message !== undefined ? { message: patch.message } : {}),
          ...(patch.enabled !== undefined ? { enabled: patch.enabled } : {}),
          ...(patch.suppress_seconds !== undefined ? { suppressSeconds: patch.suppress_seconds } : {}),
          updateTime: clock(),
        });
        const row = await mustRule(scope, id);
        await ruleChanged(scope.projectId, id, row);
        return ruleView(row);
      },

      /** Deletes the rule; its active alarms end (`reason: rule_deleted`), its log stays. */
      async delete(scope: Scope, id: string) {
        await mustRule(scope, id);
        await repo.deleteRule(scope.projectId, id);
        await ruleChanged(scope.projectId, id, undefined);
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
        bus.emit('alarm.cleared', {
          projectId: scope.projectId,
          deviceId: log.deviceId,
          ruleId: log.ruleId,
          logId: log.id,
          origin,
        });
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
        await checkWebhookUrl(notifier.guard, input.url);
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
        targetChanged(scope.projectId, row.id, false);
        return { ...targetView(row), secret };
      },

      async update(scope: Scope, id: string, patch: Partial<TargetInput>) {
        await this.get(scope, id);
        if (patch.url !== undefined) await checkWebhookUrl(notifier.guard, patch.url);
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
        targetChanged(scope.projectId, id, patch.enabled === false);
        return this.get(scope, id);
      },

      async delete(scope: Scope, id: string) {
        await this.get(scope, id);
        await repo.deleteTarget(scope.projectId, id);
        await notifier.targetRemoved(scope.projectId, id);
        targetChanged(scope.projectId, id, true);
      },
    },

    /**
     * Cluster mode: this node took over devices (the orphans' lease, or a node was lost): the timers of those
     * it owns now are armed. Before `start()` nothing is done (start arms them).
     */
    async adopt() {
      if (started) await engine.adopt();
    },

    /** Rebuilds active alarms and timers from the database, then runs the timers on the real clock. */
    async start() {
      // Set first: devices taken over while the recovery runs are adopted (adopting twice is harmless).
      started = true;
      await engine.recover();
      await notifier.recover();
      scheduler.start();
    },

    /** Stops the timers and waits for evaluations and running deliveries. */
    async stop() {
      scheduler.stop();
      for (const off of offRemote.splice(0)) off();
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
