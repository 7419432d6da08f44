import type { Logger } from 'pino';
import type { AlarmLogRow, AlarmRuleRow, AlarmsRepository, DeviceMeta } from '../../db/repositories/alarms.repository.ts';
import { createLogIds } from './log-ids.ts';
import type { EventBus } from '../events/event-bus.ts';
import { attributeHolds, describe, renderMessage, thresholdOf } from './conditions.ts';
import type { Scheduler } from './scheduler.ts';

/** Why an active alarm ended (`alarm_info.reason` of the `alarm_status` 0 entry). */
export type EndReason = 'recovered' | 'cleared' | 'rule_deleted' | 'rule_disabled';

/** An entry of the alarm log as notifications and the bus carry it. */
export interface AlarmEntry {
  log: AlarmLogRow;
  device: { id: string; name: string };
}

/** The evaluator's memory of one (device, rule). */
interface RuleState {
  /** The active alarm's trigger entry. */
  active?: { id: string; level: number; since: number };
  /** The condition holds now (attribute: last report; offline: the device is offline; silence: it has been silent too long). */
  holds: boolean;
  /** Since when (clock) it holds: persistence windows and offline time count from here. */
  since: number;
  /** The values that made it hold, for the message. */
  vars: Record<string, unknown>;
  /** Latest report time seen (a back-dated report does not undo a newer one). */
  lastTs: number;
  /** Last value of the attribute (`change`); undefined = none seen since the server started. */
  lastValue?: unknown;
  /** Silence rules: when the device last reported (clock); undefined = not seen since the server started. */
  lastReport?: number;
  /** Last time this rule triggered for this device (suppression). */
  lastTrigger?: number;
  /** Cleared by an operator while the condition held: no new alarm until it stops holding. */
  latched: boolean;
  /** The one pending timer (persistence window, offline time, silence check or suppression end). */
  timer?: () => void;
  timerAt?: number;
}

interface CompiledRules {
  /** Enabled rules by device type. */
  byType: Map<string, AlarmRuleRow[]>;
  empty: boolean;
}

export interface AlarmEngineDeps {
  repo: AlarmsRepository;
  bus: EventBus;
  scheduler: Scheduler;
  clock: () => number;
  logger: Pick<Logger, 'error' | 'warn' | 'info'>;
  /** Told after a trigger or an end is stored (notifications, the bus, stats caches). */
  onEntry: (projectId: string, entry: AlarmEntry) => void;
  /**
   * How long a device's type, name and groups are reused before they are read again (ms); a
   * `device.updated` event drops them at once, so this only bounds what another node changed.
   */
  deviceMetaTtlMs?: number;
  /** Live connection state, fresher than the database's (which is written once a second). */
  isOnline?: (deviceId: string) => boolean;
}

const covers = (rule: AlarmRuleRow, device: DeviceMeta) =>
  (!rule.deviceIds.length && !rule.groupIds.length) || rule.deviceIds.includes(device.id) || rule.groupIds.some((g) => device.groups.includes(g));

/**
 * Evaluates alarm rules on domain events (reports, online/offline) and timers, and runs the alarm
 * lifecycle: trigger → active → recovery or operator clear. Rules and devices are cached: a report
 * that changes no alarm costs no database round trip. Work on one device is serialized, so its
 * events are judged in the order they arrived.
 */
export function createAlarmEngine({ repo, bus, scheduler, clock, logger, onEntry, deviceMetaTtlMs = 600_000, isOnline = () => false }: AlarmEngineDeps) {
  const rulesCache = new Map<string, CompiledRules | Promise<CompiledRules>>();
  const metaCache = new Map<string, { projectId: string; meta: DeviceMeta | undefined; at: number }>();
  const states = new Map<string, Map<string, RuleState>>();
  const chains = new Map<string, Promise<void>>();
  const unsubscribe: Array<() => void> = [];
  const newId = createLogIds();

  // ---- caches
  async function loadRules(projectId: string): Promise<CompiledRules> {
    const rows = await repo.allRules(projectId);
    const byType = new Map<string, AlarmRuleRow[]>();
    for (const r of rows) {
      if (!r.enabled) continue;
      const list = byType.get(r.deviceTypeId) ?? [];
      list.push(r);
      byType.set(r.deviceTypeId, list);
    }
    return { byType, empty: byType.size === 0 };
  }

  function rulesOf(projectId: string): CompiledRules | Promise<CompiledRules> {
    const cached = rulesCache.get(projectId);
    if (cached) return cached;
    const loading = loadRules(projectId).then(
      (c) => {
        if (rulesCache.get(projectId) === loading) rulesCache.set(projectId, c);
        return c;
      },
      (err: unknown) => {
        if (rulesCache.get(projectId) === loading) rulesCache.delete(projectId);
        throw err;
      },
    );
    rulesCache.set(projectId, loading);
    return loading;
  }

  async function metaOf(projectId: string, deviceId: string): Promise<DeviceMeta | undefined> {
    const hit = metaCache.get(deviceId);
    // A miss (unknown device, or another project's) is cached too: it must not cost a query per report.
    if (hit && clock() - hit.at < deviceMetaTtlMs && hit.projectId === projectId) return hit.meta;
    const meta = await repo.deviceMeta(projectId, deviceId);
    if (metaCache.size >= 100_000) metaCache.clear();
    metaCache.set(deviceId, { projectId, meta, at: clock() });
    return meta;
  }

  function stateOf(deviceId: string, ruleId: string): RuleState {
    let byRule = states.get(deviceId);
    if (!byRule) states.set(deviceId, (byRule = new Map()));
    let s = byRule.get(ruleId);
    if (!s) byRule.set(ruleId, (s = { holds: false, since: 0, vars: {}, lastTs: -Infinity, latched: false }));
    return s;
  }

  /** Runs `fn` after everything queued for the device (one device's work never interleaves). */
  function enqueue(deviceId: string, fn: () => Promise<void>): Promise<void> {
    const prev = chains.get(deviceId) ?? Promise.resolve();
    const next = prev.then(fn).catch((err: unknown) => logger.error({ err: { message: (err as Error)?.message }, deviceId }, 'alarm evaluation failed'));
    chains.set(deviceId, next);
    void next.then(() => {
      if (chains.get(deviceId) === next) chains.delete(deviceId);
    });
    return next;
  }

  function setTimer(s: RuleState, at: number, fn: () => Promise<void>, deviceId: string) {
    if (s.timer && s.timerAt === at) return;
    s.timer?.();
    s.timerAt = at;
    s.timer = scheduler.at(at, () => {
      s.timer = undefined;
      s.timerAt = undefined;
      return enqueue(deviceId, fn);
    });
  }

  function cancelTimer(s: RuleState) {
    s.timer?.();
    s.timer = undefined;
    s.timerAt = undefined;
  }

  // ---- lifecycle
  function varsOf(rule: AlarmRuleRow, device: DeviceMeta, extra: Record<string, unknown>) {
    const c = rule.condition;
    return {
      device: { id: device.id, name: device.name },
      rule: { id: rule.id, name: rule.name },
      level: rule.level,
      threshold: thresholdOf(c),
      ...(c.kind === 'attribute' ? { identifier: c.identifier, min: c.min, max: c.max, for_seconds: c.for_seconds ?? 0 } : {}),
      ...(c.kind === 'offline' ? { for_seconds: c.for_seconds } : {}),
      ...(c.kind === 'silence' ? { seconds: c.seconds } : {}),
      ...extra,
    };
  }

  async function trigger(rule: AlarmRuleRow, device: DeviceMeta, s: RuleState) {
    if (s.active || s.latched || !s.holds) return;
    const now = clock();
    if (rule.suppressSeconds > 0 && s.lastTrigger !== undefined && now < s.lastTrigger + rule.suppressSeconds * 1000) {
      // Repeats within the window are held back; if the condition still holds when it ends, it triggers then.
      setTimer(s, s.lastTrigger + rule.suppressSeconds * 1000, () => trigger(rule, device, s), device.id);
      return;
    }
    const c = rule.condition;
    const vars = varsOf(rule, device, s.vars);
    const info: Record<string, unknown> = {
      rule_id: rule.id,
      rule_name: rule.name,
      kind: c.kind,
      message: renderMessage(rule.message || describe(c), vars),
      threshold: thresholdOf(c),
      since: s.since,
      ...(c.kind === 'attribute' ? { identifier: c.identifier, op: c.op, value: s.vars.value ?? null } : {}),
      ...(c.kind === 'attribute' && c.op === 'change' ? { previous: s.vars.previous ?? null } : {}),
    };
    const log = await repo.trigger({ id: newId(now), projectId: rule.projectId, deviceId: device.id, ruleId: rule.id, alarmLevel: rule.level, alarmInfo: info, createTime: now });
    s.lastTrigger = now;
    if (!log) {
      // Already active in the database (written by an earlier run): adopt it, no second entry.
      s.active = { id: '', level: rule.level, since: now };
      return;
    }
    s.active = { id: log.id, level: log.alarmLevel, since: now };
    onEntry(rule.projectId, { log, device: { id: device.id, name: device.name } });
  }

  async function end(
    projectId: string,
    device: { id: string; name: string },
    rule: { id: string; name: string; level?: number },
    s: RuleState | undefined,
    triggerId: string,
    level: number,
    reason: EndReason,
    extra: Record<string, unknown> = {},
    clear?: { by: string; note: string },
  ): Promise<AlarmLogRow | undefined> {
    const now = clock();
    const info = { rule_id: rule.id, rule_name: rule.name, reason, trigger_id: triggerId, message: `${device.name}: ${rule.name} ${reason === 'recovered' ? 'recovered' : reason.replace('_', ' ')}`, ...extra };
    const log = await repo.end(triggerId, { id: newId(now), projectId, deviceId: device.id, ruleId: rule.id, alarmLevel: level, alarmInfo: info, createTime: now }, clear);
    if (s) s.active = undefined;
    if (log) onEntry(projectId, { log, device });
    return log;
  }

  /** Ends the state's active alarm (when its trigger id is unknown, the database's active one). */
  async function recover(rule: AlarmRuleRow, device: DeviceMeta, s: RuleState, reason: EndReason, extra: Record<string, unknown> = {}) {
    if (!s.active) return;
    let triggerId = s.active.id;
    if (!triggerId) {
      const { rows } = await repo.listLogs({ projectId: rule.projectId }, { deviceId: device.id, ruleId: rule.id, active: true }, 1, 0);
      triggerId = rows[0]?.log.id ?? '';
      if (!triggerId) {
        s.active = undefined;
        return;
      }
    }
    await end(rule.projectId, device, rule, s, triggerId, s.active.level, reason, extra);
  }

  /** The condition now holds (`holds`) or not; moves the state and the alarm accordingly. */
  async function judge(rule: AlarmRuleRow, device: DeviceMeta, s: RuleState, holds: boolean, vars: Record<string, unknown>, recoveryExtra: Record<string, unknown> = {}) {
    if (holds) {
      if (!s.holds) {
        s.holds = true;
        s.since = clock();
      }
      s.vars = vars;
      if (s.active || s.latched) return;
      const c = rule.condition;
      const waitMs = c.kind === 'attribute' ? (c.for_seconds ?? 0) * 1000 : c.kind === 'offline' ? c.for_seconds * 1000 : 0;
      if (waitMs > 0 && clock() < s.since + waitMs) {
        setTimer(s, s.since + waitMs, () => trigger(rule, device, s), device.id);
        return;
      }
      await trigger(rule, device, s);
    } else {
      const was = s.holds;
      s.holds = false;
      s.latched = false;
      cancelTimer(s);
      if (s.active || was) await recover(rule, device, s, 'recovered', recoveryExtra);
    }
  }

  // ---- silence
  function armSilence(rule: AlarmRuleRow, device: DeviceMeta, s: RuleState) {
    if (rule.condition.kind !== 'silence') return;
    const due = (s.lastReport ??= clock()) + rule.condition.seconds * 1000;
    if (s.timer && s.timerAt !== undefined && s.timerAt <= due) return; // a check comes earlier and re-arms
    setTimer(s, due, () => silenceCheck(rule, device, s), device.id);
  }

  async function silenceCheck(rule: AlarmRuleRow, device: DeviceMeta, s: RuleState) {
    if (rule.condition.kind !== 'silence') return;
    const due = (s.lastReport ?? clock()) + rule.condition.seconds * 1000;
    if (clock() < due) return armSilence(rule, device, s);
    await judge(rule, device, s, true, { last_report_time: s.lastReport });
  }

  // ---- events
  async function onAttributes(projectId: string, deviceId: string, attributes: Record<string, unknown>, ts: number) {
    const compiled = await rulesOf(projectId);
    if (compiled.empty) return;
    const device = await metaOf(projectId, deviceId);
    if (!device?.typeId) return;
    for (const rule of compiled.byType.get(device.typeId) ?? []) {
      if (!covers(rule, device)) continue;
      const c = rule.condition;
      if (c.kind === 'silence') {
        const s = stateOf(deviceId, rule.id);
        s.lastReport = Math.max(s.lastReport ?? 0, clock());
        if (s.holds || s.active) await judge(rule, device, s, false, {});
        armSilence(rule, device, s);
        continue;
      }
      if (c.kind !== 'attribute' || !(c.identifier in attributes)) continue;
      const s = stateOf(deviceId, rule.id);
      if (ts < s.lastTs) continue;
      s.lastTs = ts;
      const value = attributes[c.identifier];
      const previous = s.lastValue;
      s.lastValue = value;
      const holds = attributeHolds(c, value, previous);
      await judge(rule, device, s, holds, { value, previous, ts }, { value });
    }
  }

  async function onPresence(projectId: string, deviceId: string, online: boolean) {
    const compiled = await rulesOf(projectId);
    if (compiled.empty) return;
    const device = await metaOf(projectId, deviceId);
    if (!device?.typeId) return;
    for (const rule of compiled.byType.get(device.typeId) ?? []) {
      if (rule.condition.kind !== 'offline' || !covers(rule, device)) continue;
      const s = stateOf(deviceId, rule.id);
      await judge(rule, device, s, !online, { offline_since: s.holds ? s.since : clock() });
    }
  }

  /**
   * The report's fast path: when nothing is queued for the device, its rules and the device are
   * cached, and no rule would start or end an alarm or a window, the report is applied here, at
   * once and without promises (what onAttributes would do in that case). Otherwise returns false
   * untouched and the full path runs.
   */
  function steady(compiled: CompiledRules, projectId: string, deviceId: string, attributes: Record<string, unknown>, ts: number): boolean {
    if (chains.has(deviceId)) return false;
    const hit = metaCache.get(deviceId);
    if (!hit || hit.projectId !== projectId || clock() - hit.at >= deviceMetaTtlMs) return false;
    const device = hit.meta;
    if (!device) return true; // known not to be a device of this project: nothing to evaluate
    if (!device.typeId) return true;
    const rules = compiled.byType.get(device.typeId);
    if (!rules) return true;
    const byRule = states.get(deviceId);
    // First pass: would every rule stay as it is?
    for (const rule of rules) {
      if (!covers(rule, device)) continue;
      const c = rule.condition;
      if (c.kind === 'offline') continue;
      // A rule on an attribute this report does not carry stays as it is, whatever its state.
      if (c.kind === 'attribute' && !(c.identifier in attributes)) continue;
      const st = byRule?.get(rule.id);
      if (!st) return false;
      if (c.kind === 'silence') {
        if (st.holds || st.active || !st.timer) return false;
        continue;
      }
      if (!(c.identifier in attributes) || ts < st.lastTs) continue;
      const holds = attributeHolds(c, attributes[c.identifier], st.lastValue);
      if (holds !== st.holds) return false;
      if (holds ? !(st.active || st.latched || st.timer) : st.active || st.timer) return false;
    }
    // Second pass: record the values.
    const now = clock();
    for (const rule of rules) {
      if (!covers(rule, device)) continue;
      const c = rule.condition;
      if (c.kind === 'offline') continue;
      if (c.kind === 'attribute' && !(c.identifier in attributes)) continue;
      // The first pass returned false unless every remaining rule has its state.
      const st = byRule!.get(rule.id)!;
      if (c.kind === 'silence') {
        st.lastReport = Math.max(st.lastReport ?? 0, now);
        continue;
      }
      if (ts < st.lastTs) continue;
      const value = attributes[c.identifier];
      if (st.holds) st.vars = { value, previous: st.lastValue, ts };
      st.lastTs = ts;
      st.lastValue = value;
    }
    return true;
  }

  /** Starts watching an enabled connection or silence rule over its devices (rule saved, or server start). */
  async function watch(rule: AlarmRuleRow, startedAt: number) {
    const c = rule.condition;
    if (!rule.enabled || c.kind === 'attribute') return;
    const queued: Promise<void>[] = [];
    for (const d of await repo.watchedDevices(rule)) {
      // The query already applied the rule's narrowing: no groups needed here.
      const device: DeviceMeta = { id: d.id, projectId: rule.projectId, typeId: rule.deviceTypeId, name: d.name, groups: [] };
      queued.push(
        enqueue(d.id, async () => {
          const s = stateOf(d.id, rule.id);
          if (c.kind === 'offline') {
            if (d.online || isOnline(d.id) || s.holds) return;
            const { connect = 0, disconnect } = d.activeTs;
            // The time it went offline, when known; after a crash (no disconnect recorded) the start.
            s.holds = true;
            s.since = disconnect !== undefined && disconnect >= connect ? disconnect : startedAt;
            s.vars = { offline_since: s.since };
            if (s.active || s.latched) return;
            const due = s.since + c.for_seconds * 1000;
            if (clock() >= due) await trigger(rule, device, s);
            else setTimer(s, due, () => trigger(rule, device, s), d.id);
          } else {
            // Silent since its last report; a device that never reported, since now.
            s.lastReport = Math.max(s.lastReport ?? -Infinity, d.activeTs.attributes ?? startedAt);
            if (s.active) s.holds = true;
            else armSilence(rule, device, s);
          }
        }),
      );
    }
    await Promise.all(queued);
  }

  return {
    /** Subscribes to the bus (reports, connection changes, deleted devices). */
    attach() {
      if (unsubscribe.length) return;
      unsubscribe.push(
        bus.on('device.attributes', ({ projectId, deviceId, attributes, attrType, ts }) => {
          if (attrType !== 'report') return;
          const cached = rulesCache.get(projectId);
          if (cached && !(cached instanceof Promise) && cached.empty) return; // the common case costs a map lookup
          if (cached && !(cached instanceof Promise) && steady(cached, projectId, deviceId, attributes, ts)) return;
          void enqueue(deviceId, () => onAttributes(projectId, deviceId, attributes, ts));
        }),
        bus.on('device.online', ({ projectId, deviceId }) => {
          void enqueue(deviceId, () => onPresence(projectId, deviceId, true));
        }),
        bus.on('device.offline', ({ projectId, deviceId }) => {
          void enqueue(deviceId, () => onPresence(projectId, deviceId, false));
        }),
        bus.on('device.updated', ({ deviceId }) => {
          metaCache.delete(deviceId);
        }),
        bus.on('device.deleted', ({ deviceId }) => {
          void enqueue(deviceId, async () => {
            for (const s of states.get(deviceId)?.values() ?? []) cancelTimer(s);
            states.delete(deviceId);
            metaCache.delete(deviceId);
          });
        }),
      );
    },

    detach() {
      for (const off of unsubscribe.splice(0)) off();
    },

    /**
     * Rebuilds from the database: active alarms (so none triggers twice) and the timers of
     * connection and silence rules. Called once at start, before devices connect.
     */
    async recover() {
      const startedAt = clock();
      for (const a of await repo.activeAlarms()) {
        const s = stateOf(a.deviceId, a.ruleId);
        s.active = { id: a.id, level: a.alarmLevel, since: a.createTime };
        s.holds = true;
        s.since = a.createTime;
        s.lastTrigger = a.createTime;
      }
      for (const rule of await repo.allEnabledRules()) await watch(rule, startedAt);
    },

    /**
     * A rule was created, changed, disabled or deleted: the project's rules are read again. Its
     * active alarms end when it is deleted or disabled; otherwise they stay, and the next event
     * judges them by the new condition.
     */
    async ruleChanged(projectId: string, ruleId: string, rule: AlarmRuleRow | undefined) {
      rulesCache.delete(projectId);
      const affected = [...states.entries()].filter(([, byRule]) => byRule.has(ruleId));
      for (const [deviceId, byRule] of affected) {
        await enqueue(deviceId, async () => {
          const s = byRule.get(ruleId);
          if (!s) return;
          cancelTimer(s);
          byRule.delete(ruleId);
          if (rule?.enabled) {
            // Keep the active alarm; forget the rest (windows restart under the new condition).
            if (s.active) byRule.set(ruleId, { ...stateOf(deviceId, ruleId), active: s.active, holds: true, lastTrigger: s.lastTrigger });
          }
        });
      }
      // Active alarms of a deleted or disabled rule end.
      if (!rule?.enabled) {
        const { rows } = await repo.listLogs({ projectId }, { ruleId, active: true }, 10_000, 0);
        for (const { log, deviceName } of rows) {
          await enqueue(log.deviceId, async () => {
            await end(projectId, { id: log.deviceId, name: deviceName }, { id: ruleId, name: rule?.name ?? String(log.alarmInfo.rule_name ?? '') }, undefined, log.id, log.alarmLevel, rule ? 'rule_disabled' : 'rule_deleted');
          });
        }
      }
      if (rule?.enabled) await watch(rule, clock());
    },

    /** An operator clears an active alarm: the recovery entry says who and why; no new alarm until the condition stops holding. */
    async clear(log: AlarmLogRow, deviceName: string, by: string, note: string): Promise<AlarmLogRow | undefined> {
      let out: AlarmLogRow | undefined;
      await enqueue(log.deviceId, async () => {
        const s = states.get(log.deviceId)?.get(log.ruleId);
        const ruleName = String(log.alarmInfo.rule_name ?? '');
        out = await end(log.projectId, { id: log.deviceId, name: deviceName }, { id: log.ruleId, name: ruleName }, s, log.id, log.alarmLevel, 'cleared', { by, note }, { by, note });
        if (out && s) {
          s.latched = s.holds;
          cancelTimer(s);
        }
      });
      return out;
    },

    /** Resolves when every queued evaluation has finished (tests, shutdown). */
    async idle() {
      while (chains.size) await Promise.all([...chains.values()]);
    },

    /** Active (device, rule) states held in memory, for tests and operators. */
    activeCount() {
      let n = 0;
      for (const byRule of states.values()) for (const s of byRule.values()) if (s.active) n++;
      return n;
    },
  };
}
export type AlarmEngine = ReturnType<typeof createAlarmEngine>;
