import type {
  AttributeModelRow,
  DataStreamRow,
  DeviceTypeWithCount,
  ExtendInfoDefRow,
} from '../../db/repositories/device-types.repository.ts';
import type { Scope } from '../auth/principal.ts';

/**
 * The type key creates devices on a certificate request (device-protocol.md §4): a provisioning
 * credential, so customers (who may read types) are not shown it.
 */
const typeKeyFor = (key: string, scope: Scope) => (scope.customerId ? '' : key);

/** The list item of http-api.md §3 `GET /api/v1/device_types`, plus the §4 fields. */
export function typeListView(t: DeviceTypeWithCount, scope: Scope) {
  return {
    id: t.id,
    name: t.name,
    descr: t.descr,
    tags: t.tags,
    create_time: t.createTime,
    device_count: t.deviceCount,
    conn_protocol: t.connProtocol,
    conn_type: t.connType,
    type_key: typeKeyFor(t.typeKey, scope),
    allow_auto_create: t.allowAutoCreate,
  };
}

export function typeView(t: DeviceTypeWithCount, scope: Scope) {
  return {
    id: t.id,
    name: t.name,
    descr: t.descr,
    tags: t.tags,
    type_key: typeKeyFor(t.typeKey, scope),
    conn_type: t.connType,
    conn_protocol: t.connProtocol,
    allow_auto_create: t.allowAutoCreate,
    tcp_heartbeat: t.tcpHeartbeat,
    tcp_frame_gap_ms: t.tcpFrameGapMs,
    create_time: t.createTime,
    update_time: t.updateTime,
    device_count: t.deviceCount,
  };
}

export function attributeView(a: AttributeModelRow) {
  return {
    id: a.id,
    identifier: a.identifier,
    name: a.name,
    data_type: a.dataType,
    unit: a.unit,
    data_options: a.options,
    create_time: a.createTime,
    update_time: a.updateTime,
  };
}

export function streamView(s: DataStreamRow) {
  return {
    id: s.id,
    identifier: s.identifier,
    name: s.name,
    format: s.format,
    tcp_bound: s.tcpBound,
    map_to_attributes: s.mapToAttributes,
    create_time: s.createTime,
    update_time: s.updateTime,
  };
}

export function infoDefView(d: ExtendInfoDefRow) {
  return {
    id: d.id,
    info_type: d.infoType,
    name: d.name,
    descr: d.descr,
    enabled: d.enabled,
    options: d.options,
    create_time: d.createTime,
    update_time: d.updateTime,
    is_standard: false,
  };
}
