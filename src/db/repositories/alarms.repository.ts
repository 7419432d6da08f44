import { and, count, desc, eq, inArray, isNull, sql, type SQL } from 'drizzle-orm';
import type { Db, Tx } from '../client.ts';
import { inScope, type Scope } from '../scope.ts';
import {
  alarmLogs,
  alarmRules,
  deviceGroupMembers,
  deviceGroups,
  devices,
  deviceTypes,
  notificationTargets,
  type NotifyAttempt,
} from '../schema/index.ts';

export type AlarmRuleRow = typeof alarmRules.$inferSelect;
export type NewAlarmRule = typeof alarmRules.$inferInsert;
export type AlarmLogRow = typeof alarmLogs.$inferSelect;
export type NotificationTargetRow = typeof notificationTargets.$inferSelect;

/** What the evaluator needs of a device, loaded once and cached (src/domain/alarms/alarm-engine.ts). */
export interface DeviceMeta {
  id: string;
  projectId: string;
  typeId: string | null;
  name: string;
  groups: string[];
}

/** A device a connection or silence rule watches. */
export interface WatchedDevice {
  id: string;
  name: string;
  online: boolean;
  activeTs: Record<string, number>;
  /** The node holding or last holding its session (cluster mode, docs/cluster.md §4); null: none yet. */
  sessionNode: string | null;
}

export interface AlarmLogFilter {
  deviceId?: string;
  status?: number;
  level?: number;
  ruleId?: string;
  active?: boolean;
}

/** Restricts logs to the scope: the project always, and the customer's bound devices for customer tokens. */
const logsInScope = (scope: Scope): SQL => inScope(scope, alarmLogs);

/** Makes the device's `alarm`/`alarm_level` its highest active alarm (earliest first among equals), or none. */
function refreshDeviceState(tx: Tx, deviceId: string) {
  return tx.execute(sql`
    with top as (
      select alarm_level, create_time, rule_id from ${alarmLogs}
      where device_id = ${deviceId} and alarm_status = 1 and end_time is null
      order by alarm_level desc, create_time asc, id asc limit 1)
    update ${devices} set
      alarm_level = coalesce((select alarm_level from top), 0),
      alarm = (select jsonb_build_object('level', alarm_level, 'since', create_time, 'rule', rule_id) from top)
    where id = ${deviceId}`);
}

/** A device as the evaluator sees it ({@link DeviceMeta}). */
const deviceMetaColumns = {
  id: devices.id,
  projectId: devices.projectId,
  typeId: devices.typeId,
  name: devices.name,
  groups: sql<
    string[]
  >`coalesce((select array_agg(m.group_id) from ${deviceGroupMembers} m where m.device_id = ${devices.id}), '{}'::text[])`,
};

export function createAlarmsRepository(db: Db) {
  return {
    // ---- rules
    async listRules(projectId: string, typeId: string | undefined, limit: number, offset: number) {
      const where = and(eq(alarmRules.projectId, projectId), typeId ? eq(alarmRules.deviceTypeId, typeId) : undefined);
      const rows = await db
        .select()
        .from(alarmRules)
        .where(where)
        .orderBy(desc(alarmRules.id))
        .limit(limit)
        .offset(offset);
      const [c] = await db.select({ n: count() }).from(alarmRules).where(where);
      return { rows, total: c?.n ?? 0 };
    },

    /** Every rule of a project (the evaluator's cache). */
    allRules(projectId: string): Promise<AlarmRuleRow[]> {
      return db.select().from(alarmRules).where(eq(alarmRules.projectId, projectId)).orderBy(alarmRules.id);
    },

    /** Every enabled connection or silence rule (at start: arming their timers; attribute rules need none). */
    enabledTimedRules(): Promise<AlarmRuleRow[]> {
      return db
        .select()
        .from(alarmRules)
        .where(and(eq(alarmRules.enabled, true), sql`${alarmRules.condition}->>'kind' <> 'attribute'`))
        .orderBy(alarmRules.id);
    },

    async getRule(projectId: string, id: string): Promise<AlarmRuleRow | undefined> {
      const [row] = await db
        .select()
        .from(alarmRules)
        .where(and(eq(alarmRules.projectId, projectId), eq(alarmRules.id, id)))
        .limit(1);
      return row;
    },

    async insertRule(row: NewAlarmRule) {
      await db.insert(alarmRules).values(row);
    },

    async updateRule(projectId: string, id: string, patch: Partial<NewAlarmRule>) {
      await db
        .update(alarmRules)
        .set(patch)
        .where(and(eq(alarmRules.projectId, projectId), eq(alarmRules.id, id)));
    },

    async deleteRule(projectId: string, id: string) {
      await db.delete(alarmRules).where(and(eq(alarmRules.projectId, projectId), eq(alarmRules.id, id)));
    },

    async typeInProject(projectId: string, typeId: string) {
      const [row] = await db
        .select({ id: deviceTypes.id })
        .from(deviceTypes)
        .where(and(eq(deviceTypes.id, typeId), eq(deviceTypes.projectId, projectId)))
        .limit(1);
      return row !== undefined;
    },

    /** The project's devices among `ids`, with their type (a rule's `device_ids` must be of its type). */
    async deviceTypesOf(projectId: string, ids: string[]): Promise<Array<{ id: string; typeId: string | null }>> {
      if (!ids.length) return [];
      return db
        .select({ id: devices.id, typeId: devices.typeId })
        .from(devices)
        .where(and(eq(devices.projectId, projectId), inArray(devices.id, ids)));
    },

    async existingGroupIds(projectId: string, ids: string[]): Promise<string[]> {
      if (!ids.length) return [];
      const rows = await db
        .select({ id: deviceGroups.id })
        .from(deviceGroups)
        .where(and(eq(deviceGroups.projectId, projectId), inArray(deviceGroups.id, ids)));
      return rows.map((r) => r.id);
    },

    // ---- devices, as the evaluator sees them
    async deviceMeta(projectId: string, deviceId: string): Promise<DeviceMeta | undefined> {
      const [row] = await db
        .select(deviceMetaColumns)
        .from(devices)
        .where(and(eq(devices.id, deviceId), eq(devices.projectId, projectId)))
        .limit(1);
      return row;
    },

    /** The devices a rule covers that have ever been active (connection and silence rules watch only those). */
    async watchedDevices(
      rule: Pick<AlarmRuleRow, 'projectId' | 'deviceTypeId' | 'deviceIds' | 'groupIds'>,
    ): Promise<WatchedDevice[]> {
      const parts: SQL[] = [
        eq(devices.projectId, rule.projectId),
        eq(devices.typeId, rule.deviceTypeId),
        eq(devices.active, true),
      ];
      const narrow: SQL[] = [];
      if (rule.deviceIds.length) narrow.push(inArray(devices.id, rule.deviceIds));
      if (rule.groupIds.length) {
        const ids = sql.join(
          rule.groupIds.map((g) => sql`${g}`),
          sql`, `,
        );
        narrow.push(
          sql`exists (select 1 from ${deviceGroupMembers} m where m.device_id = ${devices.id} and m.group_id in (${ids}))`,
        );
      }
      if (narrow.length) parts.push(sql`(${sql.join(narrow, sql` or `)})`);
      return db
        .select({
          id: devices.id,
          name: devices.name,
          online: devices.online,
          activeTs: devices.activeTs,
          sessionNode: devices.sessionNode,
        })
        .from(devices)
        .where(and(...parts));
    },

    /**
     * Where a device's session is (cluster mode: the node holding or last holding it) and its last
     * stored report time (`active_ts.attributes`): what a connection or silence timer checks before it
     * fires. Undefined when the device is gone.
     */
    async deviceSession(
      deviceId: string,
    ): Promise<{ sessionNode: string | null; lastReport: number | undefined } | undefined> {
      const [row] = await db
        .select({ sessionNode: devices.sessionNode, activeTs: devices.activeTs })
        .from(devices)
        .where(eq(devices.id, deviceId))
        .limit(1);
      if (!row) return undefined;
      const last = row.activeTs?.attributes;
      return {
        sessionNode: row.sessionNode,
        lastReport: typeof last === 'number' ? last : undefined,
      };
    },

    // ---- lifecycle
    /**
     * A rule's active alarms (trigger entries without an end) with their devices, or only `deviceId`'s:
     * no page, no count, and the filter of the partial unique index of active alarms (schema/alarms.ts).
     */
    activeTriggers(
      projectId: string,
      ruleId: string,
      deviceId?: string,
    ): Promise<Array<{ log: AlarmLogRow; device: DeviceMeta }>> {
      return db
        .select({ log: alarmLogs, device: deviceMetaColumns })
        .from(alarmLogs)
        .innerJoin(devices, eq(devices.id, alarmLogs.deviceId))
        .where(
          and(
            eq(alarmLogs.projectId, projectId),
            eq(alarmLogs.ruleId, ruleId),
            deviceId !== undefined ? eq(alarmLogs.deviceId, deviceId) : undefined,
            eq(alarmLogs.alarmStatus, 1),
            isNull(alarmLogs.endTime),
          ),
        )
        .orderBy(alarmLogs.id);
    },

    /** A device's active alarms (cluster mode: raised on the node the device was on before). */
    activeOfDevice(deviceId: string): Promise<AlarmLogRow[]> {
      return db
        .select()
        .from(alarmLogs)
        .where(and(eq(alarmLogs.deviceId, deviceId), eq(alarmLogs.alarmStatus, 1), isNull(alarmLogs.endTime)));
    },

    /** Every active alarm (at start). */
    activeAlarms(): Promise<AlarmLogRow[]> {
      return db
        .select()
        .from(alarmLogs)
        .where(and(eq(alarmLogs.alarmStatus, 1), isNull(alarmLogs.endTime)));
    },

    /**
     * Records a trigger and updates the device's alarm state, in one transaction. Returns undefined
     * when the device already has an active alarm of this rule (another writer got there first).
     */
    async trigger(row: Omit<typeof alarmLogs.$inferInsert, 'alarmStatus'>): Promise<AlarmLogRow | undefined> {
      return db.transaction(async (tx) => {
        const [inserted] = await tx
          .insert(alarmLogs)
          .values({ ...row, alarmStatus: 1 })
          .onConflictDoNothing()
          .returning();
        if (inserted) await refreshDeviceState(tx, row.deviceId);
        return inserted;
      });
    },

    /**
     * Ends an active alarm: marks the trigger, records the recovery (or clear) entry and updates the
     * device's state. Returns undefined when the trigger was no longer active.
     */
    async end(
      triggerId: string,
      entry: Omit<typeof alarmLogs.$inferInsert, 'alarmStatus' | 'triggerId'>,
      clear?: { by: string; note: string },
    ): Promise<AlarmLogRow | undefined> {
      return db.transaction(async (tx) => {
        const [closed] = await tx
          .update(alarmLogs)
          .set({
            endTime: entry.createTime,
            ...(clear ? { clearBy: clear.by, clearNote: clear.note, clearTime: entry.createTime } : {}),
          })
          .where(
            and(
              eq(alarmLogs.id, triggerId),
              eq(alarmLogs.projectId, entry.projectId),
              eq(alarmLogs.alarmStatus, 1),
              isNull(alarmLogs.endTime),
            ),
          )
          .returning({ id: alarmLogs.id });
        if (!closed) return undefined;
        const [inserted] = await tx
          .insert(alarmLogs)
          .values({
            ...entry,
            alarmStatus: 0,
            triggerId,
            ...(clear ? { clearBy: clear.by, clearNote: clear.note, clearTime: entry.createTime } : {}),
          })
          .returning();
        await refreshDeviceState(tx, entry.deviceId);
        return inserted;
      });
    },

    async acknowledge(projectId: string, id: string, by: string, note: string, time: number): Promise<boolean> {
      const rows = await db
        .update(alarmLogs)
        .set({ ackBy: by, ackNote: note, ackTime: time })
        .where(
          and(
            eq(alarmLogs.id, id),
            eq(alarmLogs.projectId, projectId),
            eq(alarmLogs.alarmStatus, 1),
            isNull(alarmLogs.ackTime),
          ),
        )
        .returning({ id: alarmLogs.id });
      return rows.length > 0;
    },

    /** Appends one delivery attempt to the entry's `notify_logs`. */
    async appendNotify(id: string, attempt: NotifyAttempt) {
      await db
        .update(alarmLogs)
        .set({ notifyLogs: sql`${alarmLogs.notifyLogs} || ${JSON.stringify([attempt])}::jsonb` })
        .where(eq(alarmLogs.id, id));
    },

    // ---- reading the log
    async getLog(scope: Scope, id: string) {
      const [row] = await db
        .select({ log: alarmLogs, deviceName: devices.name })
        .from(alarmLogs)
        .innerJoin(devices, eq(devices.id, alarmLogs.deviceId))
        .where(and(eq(alarmLogs.id, id), logsInScope(scope)))
        .limit(1);
      return row;
    },

    async listLogs(scope: Scope, f: AlarmLogFilter, limit: number, offset: number) {
      const parts: SQL[] = [logsInScope(scope)];
      if (f.deviceId !== undefined) parts.push(eq(alarmLogs.deviceId, f.deviceId));
      if (f.status !== undefined) parts.push(eq(alarmLogs.alarmStatus, f.status));
      if (f.level !== undefined) parts.push(eq(alarmLogs.alarmLevel, f.level));
      if (f.ruleId !== undefined) parts.push(eq(alarmLogs.ruleId, f.ruleId));
      if (f.active) parts.push(eq(alarmLogs.alarmStatus, 1), isNull(alarmLogs.endTime));
      const where = and(...parts);
      const rows = await db
        .select({ log: alarmLogs, deviceName: devices.name })
        .from(alarmLogs)
        .innerJoin(devices, eq(devices.id, alarmLogs.deviceId))
        .where(where)
        .orderBy(desc(alarmLogs.id))
        .limit(limit)
        .offset(offset);
      const total =
        rows.length > 0 && rows.length < limit
          ? offset + rows.length
          : ((await db.select({ n: count() }).from(alarmLogs).where(where))[0]?.n ?? 0);
      return { rows, total };
    },

    // ---- notification targets
    listTargets(projectId: string): Promise<NotificationTargetRow[]> {
      return db
        .select()
        .from(notificationTargets)
        .where(eq(notificationTargets.projectId, projectId))
        .orderBy(desc(notificationTargets.id));
    },

    async getTarget(projectId: string, id: string): Promise<NotificationTargetRow | undefined> {
      const [row] = await db
        .select()
        .from(notificationTargets)
        .where(and(eq(notificationTargets.projectId, projectId), eq(notificationTargets.id, id)))
        .limit(1);
      return row;
    },

    async countTargets(projectId: string) {
      const [c] = await db
        .select({ n: count() })
        .from(notificationTargets)
        .where(eq(notificationTargets.projectId, projectId));
      return c?.n ?? 0;
    },

    async insertTarget(row: typeof notificationTargets.$inferInsert) {
      await db.insert(notificationTargets).values(row);
    },

    async updateTarget(projectId: string, id: string, patch: Partial<typeof notificationTargets.$inferInsert>) {
      await db
        .update(notificationTargets)
        .set(patch)
        .where(and(eq(notificationTargets.projectId, projectId), eq(notificationTargets.id, id)));
    },

    async deleteTarget(projectId: string, id: string) {
      await db
        .delete(notificationTargets)
        .where(and(eq(notificationTargets.projectId, projectId), eq(notificationTargets.id, id)));
    },
  };
}
export type AlarmsRepository = ReturnType<typeof createAlarmsRepository>;
