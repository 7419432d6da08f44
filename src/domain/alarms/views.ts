import type { AlarmLogRow, AlarmRuleRow, NotificationTargetRow } from '../../db/repositories/alarms.repository.ts';

/** Alarm rules, log entries and notification targets as the API shows them (http-api.md §3 "Alarms"). */

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
