import pLimit from 'p-limit';
import type { Logger } from 'pino';
import type {
  AlarmLogRow,
  AlarmRuleRow,
  AlarmsRepository,
  DeviceMeta,
} from '../../db/repositories/alarms.repository.ts';
import { createLogIds } from './log-ids.ts';
import type { EventBus } from '../events/event-bus.ts';
import { KeyedQueue } from '../../lib/keyed-queue.ts';
import { TtlCache } from '../../lib/ttl-cache.ts';
import { attributeHolds, describe, renderMessage, thresholdOf } from './conditions.ts';
import type { Scheduler } from './scheduler.ts';

/** Why an active alarm ended (`alarm_info.reason` of the `alarm_status` 0 entry). */
export type EndReason = 'recovered' | 'cleared' | 'rule_deleted' | 'rule_disabled' | 'rule_changed';

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

/**
 * Cluster mode (docs/cluster.md §4): which node runs a device's connection and silence timers. A device's
 * timers live on the node named by its `session_node` (the node that holds or last held its session);
 * devices without one, or whose node is dead, on the node holding the orphans' lease.
 */
export interface AlarmOwnership {
  /** Whether this node runs the timers of a device whose session is (or was last) on `sessionNode`. */
  owns(sessionNode: string | null): boolean;
  /**
   * Whether the device is connected to any node now (the session directory), for an offline timer about to
   * fire: its new node's online write may still be a second away. Unknown (the cluster unreachable): false.
   */
  connectedAnywhere?(deviceId: string): Promise<boolean>;
}

interface CompiledRules {
  /** Enabled rules by device type (empty: the project has none). */
  byType: Map<string, AlarmRuleRow[]>;
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
  /**
   * How long a project's rules are reused before they are read again (ms); a change made through this
   * node drops them at once, so this only bounds what another node changed.
   */
  rulesTtlMs?: number;
  /** Rules whose timers are rebuilt at once at start-up (each reads its devices). */
  recoveryConcurrency?: number;
  /** Live connection state, fresher than the database's (which is written once a second). */
  isOnline?: (deviceId: string) => boolean;
  /**
   * Cluster mode: only the owner's timers fire, and each checks before it fires that the device is still
   * this node's (a device that connected to another node meanwhile cancels it). Unset: one node, all devices.
   */
  ownership?: AlarmOwnership;
}

/** Waits for every promise, then rejects with the first failure if there was one (nothing is left running). */
async function settleAll(work: Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(work)).find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** The rule applies to the device: its type, and its device or group narrowing if any. */
const covers = (rule: AlarmRuleRow, device: DeviceMeta) =>
  device.typeId === rule.deviceTypeId &&
  ((!rule.deviceIds.length && !rule.groupIds.length) ||
    rule.deviceIds.includes(device.id) ||
    rule.groupIds.some((g) => device.groups.includes(g)));

/**
 * Evaluates alarm rules on domain events (reports, online/offline) and timers, and runs the alarm
 * lifecycle: trigger → active → recovery or operator clear. Rules and devices are cached: a report
 * that changes no alarm costs no database round trip. Work on one device is serialized, so its
 * events are judged in the order they arrived.
 */
export function createAlarmEngine(deps: AlarmEngineDeps) {
  const {
    repo,
    bus,
    scheduler,
    clock,
    logger,
    onEntry,
    deviceMetaTtlMs = 600_000,
    rulesTtlMs = 60_000,
    recoveryConcurrency = 8,
    isOnline = () => false,
    ownership,
  } = deps;
  // One entry per project (namespace = project id).
  const rulesCache = new TtlCache<CompiledRules>(rulesTtlMs, clock, 100_000);
  const metaCache = new Map<string, { projectId: string; meta: DeviceMeta | undefined; at: number }>();
  const states = new Map<string, Map<string, RuleState>>();
  const queue = new KeyedQueue<string>();
  const unsubscribe: Array<() => void> = [];
  const newId = createLogIds();
  /** Cluster mode: devices whose active alarms were read from the database (`hydrate`). */
  const hydrated = new Set<string>();

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
    return { byType };
  }

  const rulesOf = (projectId: string) => rulesCache.get(projectId, '', () => loadRules(projectId));

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

  /**
   * Runs `fn` after everything queued for the device (one device's work never interleaves). The
   * returned promise rejects when `fn` fails: the caller answers for it (an HTTP request fails, a
   * background caller logs it through `background`); the device's queue goes on either way.
   */
  function enqueue<T>(deviceId: string, fn: () => Promise<T>): Promise<T> {
    return queue.run(deviceId, fn);
  }

  /** `enqueue` for work nobody waits on (bus events, timers): a failure is logged. */
  function background(deviceId: string, fn: () => Promise<void>): Promise<void> {
    return enqueue(deviceId, fn).catch((err: unknown) => logger.error({ err, deviceId }, 'alarm evaluation failed'));
  }

  function setTimer(s: RuleState, at: number, fn: () => Promise<void>, deviceId: string) {
    if (s.timer && s.timerAt === at) return;
    s.timer?.();
    s.timerAt = at;
    s.timer = scheduler.at(at, () => {
      s.timer = undefined;
      s.timerAt = undefined;
      return background(deviceId, fn);
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
      ...(c.kind === 'attribute'
        ? { identifier: c.identifier, min: c.min, max: c.max, for_seconds: c.for_seconds ?? 0 }
        : {}),
      ...(c.kind === 'offline' ? { for_seconds: c.for_seconds } : {}),
      ...(c.kind === 'silence' ? { seconds: c.seconds } : {}),
      ...extra,
    };
  }

  /**
   * Cluster mode: a connection or silence timer fires only while the device is this node's (its stored
   * `session_node`); otherwise the state is forgotten here, its owner judges it. Returns the stored session
   * when the timer may fire.
   */
  async function fenced(rule: AlarmRuleRow, deviceId: string, s: RuleState) {
    const stored = await repo.deviceSession(deviceId);
    if (stored && ownership!.owns(stored.sessionNode)) return stored;
    cancelTimer(s);
    if (!s.active) states.get(deviceId)?.delete(rule.id);
    return undefined;
  }

  async function trigger(rule: AlarmRuleRow, device: DeviceMeta, s: RuleState) {
    if (s.active || s.latched || !s.holds) return;
    if (ownership && rule.condition.kind !== 'attribute') {
      const stored = await fenced(rule, device.id, s);
      // Not this node's any more (it logged in on another node), or connected here again (its online
      // event is queued behind this). The stored online flag is not read: it is written a second late.
      if (!stored || (rule.condition.kind === 'offline' && isOnline(device.id))) return;
      // Logged in on another node a moment ago: that node ends the wait (it holds the device now).
      if (rule.condition.kind === 'offline' && (await ownership.connectedAnywhere?.(device.id))) {
        cancelTimer(s);
        if (!s.active) states.get(device.id)?.delete(rule.id);
        return;
      }
    }
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
    const log = await repo.trigger({
      id: newId(now),
      projectId: rule.projectId,
      deviceId: device.id,
      ruleId: rule.id,
      alarmLevel: rule.level,
      alarmInfo: info,
      createTime: now,
    });
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
    const info = {
      rule_id: rule.id,
      rule_name: rule.name,
      reason,
      trigger_id: triggerId,
      message: `${device.name}: ${rule.name} ${reason === 'recovered' ? 'recovered' : reason.replace('_', ' ')}`,
      ...extra,
    };
    const log = await repo.end(
      triggerId,
      {
        id: newId(now),
        projectId,
        deviceId: device.id,
        ruleId: rule.id,
        alarmLevel: level,
        alarmInfo: info,
        createTime: now,
      },
      clear,
    );
    if (s) s.active = undefined;
    if (log) onEntry(projectId, { log, device });
    return log;
  }

  /** Ends the state's active alarm (when its trigger id is unknown, the database's active one). */
  async function recover(
    rule: AlarmRuleRow,
    device: DeviceMeta,
    s: RuleState,
    reason: EndReason,
    extra: Record<string, unknown> = {},
  ) {
    if (!s.active) return;
    let triggerId = s.active.id;
    if (!triggerId) {
      const [row] = await repo.activeTriggers(rule.projectId, rule.id, device.id);
      triggerId = row?.log.id ?? '';
      if (!triggerId) {
        s.active = undefined;
        return;
      }
    }
    await end(rule.projectId, device, rule, s, triggerId, s.active.level, reason, extra);
  }

  /** The condition now holds (`holds`) or not; moves the state and the alarm accordingly. */
  async function judge(
    rule: AlarmRuleRow,
    device: DeviceMeta,
    s: RuleState,
    holds: boolean,
    vars: Record<string, unknown>,
    recoveryExtra: Record<string, unknown> = {},
  ) {
    if (holds) {
      if (!s.holds) {
        s.holds = true;
        s.since = clock();
      }
      s.vars = vars;
      if (s.active || s.latched) return;
      const c = rule.condition;
      const waitMs =
        c.kind === 'attribute' ? (c.for_seconds ?? 0) * 1000 : c.kind === 'offline' ? c.for_seconds * 1000 : 0;
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
    const periodMs = rule.condition.seconds * 1000;
    if (ownership) {
      // Cluster mode: reports over HTTP may reach another node; the device's stored last report
      // (devices.active_ts, docs/cluster.md §4) counts as one seen here.
      const stored = await fenced(rule, device.id, s);
      if (!stored) return;
      if (stored.lastReport !== undefined && stored.lastReport > (s.lastReport ?? -Infinity)) {
        s.lastReport = stored.lastReport;
        if (s.holds || s.active) await judge(rule, device, s, false, {});
      }
    }
    const due = (s.lastReport ?? clock()) + periodMs;
    if (clock() < due) return armSilence(rule, device, s);
    await judge(rule, device, s, true, { last_report_time: s.lastReport });
    // Cluster mode: while the alarm holds, the stored last report is checked again every period.
    if (ownership && !s.timer && (s.active || s.holds))
      setTimer(s, clock() + periodMs, () => silenceCheck(rule, device, s), device.id);
  }

  /**
   * Cluster mode: the device's active alarms as the database has them (raised on another node, where the
   * device was before), adopted into this node's state so they recover here. Once per device, and again
   * whenever it logs in on this node.
   */
  async function hydrate(deviceId: string) {
    if (hydrated.size >= 100_000) hydrated.clear();
    hydrated.add(deviceId);
    const rows = await repo.activeOfDevice(deviceId);
    const activeRules = new Set(rows.map((a) => a.ruleId));
    // An alarm this node remembers as active that the database no longer has was ended on another node
    // (the device was there meanwhile): this node's memory of it goes, so the condition is judged afresh.
    for (const [ruleId, s] of states.get(deviceId) ?? []) {
      if (!s.active || activeRules.has(ruleId)) continue;
      // Its timers stay: a silence rule's check re-arms itself from the stored last report, and a trigger
      // whose condition no longer holds does nothing.
      s.active = undefined;
      s.holds = false;
      s.latched = false;
      s.vars = {};
    }
    for (const a of rows) {
      const s = stateOf(deviceId, a.ruleId);
      // Known here already (an id '' is one adopted without its id): kept; another alarm (ended and raised
      // again elsewhere) replaces it.
      if (s.active && (s.active.id === a.id || !s.active.id)) continue;
      s.active = { id: a.id, level: a.alarmLevel, since: a.createTime };
      s.holds = true;
      s.since = a.createTime;
      s.lastTrigger = a.createTime;
    }
  }

  // ---- events
  async function onAttributes(projectId: string, deviceId: string, attributes: Record<string, unknown>, ts: number) {
    const compiled = await rulesOf(projectId);
    if (!compiled.byType.size) return;
    const device = await metaOf(projectId, deviceId);
    if (!device?.typeId) return;
    if (ownership && !hydrated.has(deviceId)) await hydrate(deviceId);
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
    if (!compiled.byType.size) return;
    const device = await metaOf(projectId, deviceId);
    if (!device?.typeId) return;
    // Cluster mode: a device that logs in here may have alarms raised by the node it was on.
    if (ownership && (online || !hydrated.has(deviceId))) await hydrate(deviceId);
    for (const rule of compiled.byType.get(device.typeId) ?? []) {
      if (!covers(rule, device)) continue;
      if (rule.condition.kind === 'silence' && ownership && !online) {
        // Cluster mode: a lost node's device taken over here (docs/cluster.md §4) brings its silence
        // timer along; one already running stays.
        const s = stateOf(deviceId, rule.id);
        if (!s.timer && !s.holds && !s.active) armSilence(rule, device, s);
        continue;
      }
      if (rule.condition.kind !== 'offline') continue;
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
  function steady(
    compiled: CompiledRules,
    projectId: string,
    deviceId: string,
    attributes: Record<string, unknown>,
    ts: number,
  ): boolean {
    if (queue.busy(deviceId)) return false;
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
      if (ts < st.lastTs) continue;
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
      // Cluster mode: another node runs this device's timers.
      if (ownership && !ownership.owns(d.sessionNode)) continue;
      // The query already applied the rule's narrowing: no groups needed here.
      const device: DeviceMeta = {
        id: d.id,
        projectId: rule.projectId,
        typeId: rule.deviceTypeId,
        name: d.name,
        groups: [],
      };
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

  /**
   * A rule changed: the project's rules are read again and this node forgets its state of the rule (an
   * active alarm is kept while the rule stays enabled; windows restart under the new condition).
   */
  async function resetRule(projectId: string, ruleId: string, rule: AlarmRuleRow | undefined) {
    rulesCache.invalidate(projectId);
    const reset: Promise<void>[] = [];
    for (const [deviceId, byRule] of states) {
      if (!byRule.has(ruleId)) continue;
      reset.push(
        enqueue(deviceId, async () => {
          const s = byRule.get(ruleId);
          if (!s) return;
          cancelTimer(s);
          byRule.delete(ruleId);
          if (rule?.enabled && s.active)
            byRule.set(ruleId, {
              ...stateOf(deviceId, ruleId),
              active: s.active,
              holds: true,
              lastTrigger: s.lastTrigger,
            });
        }),
      );
    }
    await settleAll(reset);
  }

  return {
    /** Subscribes to the bus (reports, connection changes, deleted devices). */
    attach() {
      if (unsubscribe.length) return;
      unsubscribe.push(
        bus.on('device.attributes', ({ projectId, deviceId, attributes, attrType, ts }) => {
          if (attrType !== 'report') return;
          const cached = rulesCache.peek(projectId, '')?.value;
          if (cached && !cached.byType.size) return; // the common case costs two map lookups
          if (cached && steady(cached, projectId, deviceId, attributes, ts)) return;
          void background(deviceId, () => onAttributes(projectId, deviceId, attributes, ts));
        }),
        bus.on('device.online', ({ projectId, deviceId }) => {
          void background(deviceId, () => onPresence(projectId, deviceId, true));
        }),
        bus.on('device.offline', ({ projectId, deviceId }) => {
          void background(deviceId, () => onPresence(projectId, deviceId, false));
        }),
        bus.on('device.updated', ({ deviceId }) => {
          metaCache.delete(deviceId);
        }),
        bus.on('device.deleted', ({ deviceId }) => {
          void background(deviceId, async () => {
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
     * connection and silence rules, `recoveryConcurrency` rules at a time. Called once at start,
     * before devices connect.
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
      const limit = pLimit(Math.max(1, recoveryConcurrency));
      await Promise.all((await repo.enabledTimedRules()).map((rule) => limit(() => watch(rule, startedAt))));
    },

    /**
     * A rule was created, changed, disabled or deleted: the project's rules are read again. Its
     * active alarms end when it is deleted or disabled, and on the devices it no longer covers when
     * its type, devices or groups changed (`rule_changed`); the others stay, and the next event
     * judges them by the new condition. Rejects when an alarm could not be ended (after trying all).
     */
    async ruleChanged(projectId: string, ruleId: string, rule: AlarmRuleRow | undefined) {
      await resetRule(projectId, ruleId, rule);
      const limit = pLimit(Math.max(1, recoveryConcurrency));
      const ending: Promise<void>[] = [];
      const reason: EndReason | undefined = !rule ? 'rule_deleted' : !rule.enabled ? 'rule_disabled' : undefined;
      for (const { log, device } of await repo.activeTriggers(projectId, ruleId)) {
        if (!reason && covers(rule!, device)) continue;
        // A few at a time: ending thousands of alarms must not queue ahead of everybody's queries.
        ending.push(
          limit(() =>
            enqueue(log.deviceId, async () => {
              const s = states.get(log.deviceId)?.get(ruleId);
              if (s) cancelTimer(s);
              states.get(log.deviceId)?.delete(ruleId);
              const name = rule?.name ?? String(log.alarmInfo.rule_name ?? '');
              await end(
                projectId,
                { id: device.id, name: device.name },
                { id: ruleId, name },
                undefined,
                log.id,
                log.alarmLevel,
                reason ?? 'rule_changed',
              );
            }),
          ),
        );
      }
      await settleAll(ending);
      if (rule?.enabled) await watch(rule, clock());
    },

    /**
     * Cluster mode: a rule was changed on another node, which ended the alarms to end: here the project's
     * rules are read again, this node's state of the rule is rebuilt and its devices' timers armed.
     */
    async ruleChangedElsewhere(projectId: string, ruleId: string) {
      const rule = await repo.getRule(projectId, ruleId);
      await resetRule(projectId, ruleId, rule);
      if (rule?.enabled) await watch(rule, clock());
    },

    /**
     * Cluster mode: another node raised or ended an alarm of the device (it reported there too): its active
     * alarms are read again, in the device's queue, before this node judges its next report.
     */
    changedElsewhere(deviceId: string): Promise<void> {
      if (!ownership || !hydrated.has(deviceId)) return Promise.resolve();
      return background(deviceId, () => hydrate(deviceId));
    },

    /** Cluster mode: an operator cleared an alarm on another node; this node's state of it ends without an entry. */
    clearedElsewhere(deviceId: string, ruleId: string, logId: string): Promise<void> {
      return background(deviceId, async () => {
        const s = states.get(deviceId)?.get(ruleId);
        if (!s?.active || (s.active.id && s.active.id !== logId)) return;
        s.active = undefined;
        s.latched = s.holds;
        cancelTimer(s);
      });
    },

    /**
     * Cluster mode: this node took over devices (the orphans' lease, docs/cluster.md §4): the timers of
     * connection and silence rules are armed for those it now owns and does not watch yet.
     */
    async adopt() {
      const startedAt = clock();
      const limit = pLimit(Math.max(1, recoveryConcurrency));
      await Promise.all((await repo.enabledTimedRules()).map((rule) => limit(() => watch(rule, startedAt))));
    },

    /** An operator clears an active alarm: the recovery entry says who and why; no new alarm until the condition stops holding. */
    clear(log: AlarmLogRow, deviceName: string, by: string, note: string): Promise<AlarmLogRow | undefined> {
      return enqueue(log.deviceId, async () => {
        const s = states.get(log.deviceId)?.get(log.ruleId);
        const ruleName = String(log.alarmInfo.rule_name ?? '');
        const out = await end(
          log.projectId,
          { id: log.deviceId, name: deviceName },
          { id: log.ruleId, name: ruleName },
          s,
          log.id,
          log.alarmLevel,
          'cleared',
          { by, note },
          { by, note },
        );
        if (out && s) {
          s.latched = s.holds;
          cancelTimer(s);
        }
        return out;
      });
    },

    /** Resolves when every queued evaluation has finished (tests, shutdown). */
    async idle() {
      await queue.idle();
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
