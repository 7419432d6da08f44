import { deviceInScope } from './device-in-scope.ts';
import type { DeviceFilter, DeviceListRow, DevicesRepository } from '../../db/repositories/devices.repository.ts';
import type { ProjectsRepository } from '../../db/repositories/projects.repository.ts';
import { Duplicate } from '../../db/errors.ts';
import { BadRequest, Conflict, NotFound, StateConflict } from '../../errors.ts';
import { newId, randomToken, shortCode } from '../../lib/ids.ts';
import { TtlCache } from '../../lib/ttl-cache.ts';
import type { Scope } from '../auth/principal.ts';
import type { EventBus } from '../events/event-bus.ts';

export const MAX_TAGS = 64;

export interface DevicesServiceDeps {
  devices: DevicesRepository;
  projects: Pick<ProjectsRepository, 'byId'>;
  /** Told when a device's credential stops being valid, so live sessions and caches drop it. */
  bus: Pick<EventBus, 'emit'>;
  clock?: () => number;
  /**
   * How long list totals and stats may be reused. Counting a project's devices visits every one of
   * them (100k rows ≈ tens of ms); dashboards poll these calls, and creating or deleting a device
   * through this service invalidates them at once. State changes (online, alarm) show within this time.
   */
  countCacheMs?: number;
  /** Writes pending connects and disconnects before a read of online state (read-your-writes). */
  presence?: { settle(): Promise<void>; activity(deviceId: string): Record<string, number> | undefined };
}

export interface CreateDeviceInput {
  name: string;
  descr?: string;
  type?: string;
  tags?: Record<string, string>;
  device_key?: string;
}

/** `type_info` of a device without a type: a direct MQTT device (clients read its fields without checks). */
const UNTYPED = { id: '', name: '', conn_type: '1', conn_protocol: 'mqtt' };

/** The device object of http-api.md §3. */
export function deviceView(d: DeviceListRow) {
  return {
    id: d.id,
    name: d.name,
    descr: d.descr,
    device_key: d.deviceKey ?? '',
    // List items carry it too: the vendor's export tool reads it from them to print QR codes.
    device_code: d.deviceCode,
    tags: d.tags,
    create_time: d.createTime,
    alarm: d.alarm ?? {},
    active: d.activeTs,
    online: d.online,
    type: d.typeId ?? '',
    type_info: d.typeId
      ? {
          id: d.typeId,
          name: d.typeName ?? '',
          conn_type: d.typeConnType ?? '1',
          conn_protocol: d.typeConnProtocol ?? 'mqtt',
        }
      : UNTYPED,
  };
}

/** "" means "no device key" (http-api.md §3). */
const keyOrNull = (key: string | undefined) => (key === undefined ? undefined : key === '' ? null : key);

export function createDevicesService({
  devices,
  projects,
  bus,
  clock = Date.now,
  countCacheMs = 2_000,
  presence,
}: DevicesServiceDeps) {
  const totals = new TtlCache<number>(countCacheMs, clock);
  const stats = new TtlCache<Awaited<ReturnType<DevicesRepository['stats']>>>(countCacheMs, clock);
  const cachedStats = (scope: Scope) => stats.get(scope.projectId, scope.customerId ?? '', () => devices.stats(scope));
  const invalidate = (projectId: string) => {
    totals.invalidate(projectId);
    stats.invalidate(projectId);
  };

  const mustGet = (scope: Scope, id: string) => deviceInScope(devices, scope, id);
  /** The device object with message times not yet written laid over the stored ones (`active` is read-your-writes too). */
  const view = (row: DeviceListRow) => {
    const v = deviceView(row);
    const pendingActivity = presence?.activity(row.id);
    return pendingActivity ? { ...v, active: { ...v.active, ...pendingActivity } } : v;
  };

  function rethrowDuplicate(err: unknown): never {
    if (err instanceof Duplicate && err.what === 'device_key') {
      throw new Conflict('device_key is already used by another device of the project', [
        { path: 'device_key', message: 'already exists' },
      ]);
    }
    throw err;
  }

  async function checkGroups(projectId: string, groupIds: string[]) {
    const unique = [...new Set(groupIds)];
    const found = new Set(await devices.existingGroupIds(projectId, unique));
    const missing = unique.filter((g) => !found.has(g));
    if (missing.length) throw new NotFound(`Device group ${missing.join(', ')}`);
    return unique;
  }

  return {
    /**
     * A page of the list, newest first: by page number, or after a device id (keyset paging: as fast on
     * the thousandth page as on the first, and stable while devices are added; docs/http-api.md §3.4).
     */
    async list(scope: Scope, filter: DeviceFilter, page: number, pageRecords: number, after?: string) {
      if (filter.groupIds?.length) {
        await checkGroups(scope.projectId, filter.groupIds);
        if (filter.includeSubGroups)
          filter = {
            ...filter,
            groupIds: await devices.subtreeGroupIds(scope.projectId, filter.groupIds),
            includeSubGroups: false,
          };
      }
      const offset = after === undefined ? (page - 1) * pageRecords : 0;
      await presence?.settle();
      const rows = await devices.page(scope, filter, pageRecords, offset, after);
      // A page that is not full tells the total without counting (not after an id: its offset is unknown).
      const total =
        after === undefined && rows.length > 0 && rows.length < pageRecords
          ? offset + rows.length
          : await totals.get(scope.projectId, JSON.stringify([scope.customerId, filter]), () =>
              devices.total(scope, filter),
            );
      return { items: rows.map(view), total, page_total: Math.ceil(total / pageRecords) };
    },

    async get(scope: Scope, id: string) {
      await presence?.settle();
      const row = await devices.getDetail(scope, id);
      if (!row) throw new NotFound('Device');
      return {
        ...view(row),
        groups: row.groups,
        view_token: row.viewToken,
        disabled: row.disabled,
        // A gateway sub-device names its gateway and its address there (device-protocol.md §8).
        gateway: row.gatewayId ? { id: row.gatewayId, address: row.subAddress ?? '' } : null,
      };
    },

    async certificate(scope: Scope, id: string) {
      const row = await mustGet(scope, id);
      const project = await projects.byId(scope.projectId);
      if (!project) throw new NotFound('Project');
      return { id: row.id, name: row.name, access_token: row.accessToken, project_key: project.projectKey };
    },

    /** Issues a new device access token; the old one stops working (device-protocol.md §1). */
    async resetAccessToken(scope: Scope, id: string) {
      await mustGet(scope, id);
      await devices.update(scope.projectId, id, { accessToken: randomToken(20), updateTime: clock() });
      bus.emit('device.credentials_revoked', { projectId: scope.projectId, deviceId: id });
      return this.certificate(scope, id);
    },

    async create(scope: Scope, input: CreateDeviceInput) {
      const project = await projects.byId(scope.projectId);
      if (!project) throw new NotFound('Project');
      if (input.type && !(await devices.typeInProject(scope.projectId, input.type))) throw new NotFound('Device type');
      const now = clock();
      const id = newId(now);
      let inserted: boolean;
      try {
        inserted = await devices.insertWithinQuota(project.deviceQuota, {
          id,
          projectId: scope.projectId,
          typeId: input.type || null,
          name: input.name,
          descr: input.descr ?? '',
          deviceKey: keyOrNull(input.device_key) ?? null,
          accessToken: randomToken(20),
          viewToken: randomToken(20),
          deviceCode: shortCode(10),
          tags: input.tags ?? {},
          createTime: now,
          updateTime: now,
        });
      } catch (err) {
        rethrowDuplicate(err);
      }
      if (!inserted) throw new StateConflict(`The project has reached its device quota (${project.deviceQuota})`);
      invalidate(scope.projectId);
      return { id, name: input.name };
    },

    async updateInfo(
      scope: Scope,
      id: string,
      patch: { name?: string; descr?: string; device_key?: string; disabled?: boolean },
    ) {
      const before = await mustGet(scope, id);
      const deviceKey = keyOrNull(patch.device_key);
      try {
        await devices.update(scope.projectId, id, {
          ...(patch.name !== undefined ? { name: patch.name } : {}),
          ...(patch.descr !== undefined ? { descr: patch.descr } : {}),
          ...(deviceKey !== undefined ? { deviceKey } : {}),
          ...(patch.disabled !== undefined ? { disabled: patch.disabled } : {}),
          updateTime: clock(),
        });
      } catch (err) {
        rethrowDuplicate(err);
      }
      bus.emit('device.updated', { projectId: scope.projectId, deviceId: id });
      // Disabling ends the device's connections and cached logins at once; enabling drops the cached
      // "disabled" so it may log in again right away.
      if (patch.disabled !== undefined && patch.disabled !== before.disabled)
        bus.emit('device.credentials_revoked', { projectId: scope.projectId, deviceId: id });
    },

    async mergeTags(scope: Scope, id: string, tags: Record<string, string>) {
      await mustGet(scope, id);
      const outcome = await devices.mergeTags(scope.projectId, id, tags, MAX_TAGS, clock());
      if (outcome === 'missing') throw new NotFound('Device');
      if (outcome === 'too-many')
        throw new BadRequest(`A device has at most ${MAX_TAGS} tags`, [{ path: 'tags', message: 'too many tags' }]);
    },

    async removeTags(scope: Scope, id: string, keys: string[]) {
      await mustGet(scope, id);
      if (keys.length) await devices.removeTags(scope.projectId, id, keys, clock());
    },

    async setGroups(scope: Scope, id: string, groupIds: string[]) {
      await mustGet(scope, id);
      await devices.setGroups(scope.projectId, id, await checkGroups(scope.projectId, groupIds));
      totals.invalidate(scope.projectId);
      bus.emit('device.updated', { projectId: scope.projectId, deviceId: id });
    },

    async delete(scope: Scope, id: string) {
      await mustGet(scope, id);
      await devices.delete(scope.projectId, id);
      invalidate(scope.projectId);
      bus.emit('device.credentials_revoked', { projectId: scope.projectId, deviceId: id });
      bus.emit('device.deleted', { projectId: scope.projectId, deviceId: id });
    },

    /** A device's online or alarm state changed elsewhere: the next stats call counts again. */
    countsChanged(projectId: string) {
      invalidate(projectId);
    },

    async stat(scope: Scope) {
      await presence?.settle();
      const s = await cachedStats(scope);
      return {
        device_total: s.total,
        online_device_total: s.online,
        offline_device_total: s.total - s.online,
        active_device_total: s.active,
        inactive_device_total: s.total - s.active,
        alarm_device_total: s.alarm1 + s.alarm2 + s.alarm3,
      };
    },

    async alarmStat(scope: Scope) {
      const s = await cachedStats(scope);
      return {
        device_total: s.total,
        alarm_1_total: s.alarm1,
        alarm_2_total: s.alarm2,
        alarm_3_total: s.alarm3,
        normal_total: s.total - s.alarm1 - s.alarm2 - s.alarm3,
      };
    },
  };
}
export type DevicesService = ReturnType<typeof createDevicesService>;
