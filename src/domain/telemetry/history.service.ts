import type { AttributeValuesRepository } from '../../db/repositories/attribute-values.repository.ts';
import type { AttributeModelRow } from '../../db/repositories/device-types.repository.ts';
import type { DevicesRepository } from '../../db/repositories/devices.repository.ts';
import type { Aggregate, HistoryRepository } from '../../db/repositories/history.repository.ts';
import { BadRequest } from '../../errors.ts';
import { csvCell } from '../../lib/csv.ts';
import { DAY_MS } from '../../lib/time.ts';
import { TtlCache } from '../../lib/ttl-cache.ts';
import type { Scope } from '../auth/principal.ts';
import { deviceInScope } from '../devices/device-in-scope.ts';
import type { EventBus } from '../events/event-bus.ts';
import type { ModelLookup } from './current-values.service.ts';

/** The longest range of one series or aggregation call (http-api.md §3: 30 days). */
export const MAX_RANGE_MS = 30 * DAY_MS;
/** Most buckets one aggregation may return per identifier. */
export const MAX_BUCKETS = 10_000;
/** Rows read per query while exporting CSV. */
const EXPORT_PAGE = 5_000;

export interface HistoryServiceDeps {
  history: HistoryRepository;
  values: Pick<AttributeValuesRepository, 'list' | 'remove'>;
  devices: Pick<DevicesRepository, 'get'>;
  /** The attribute models of a device type, as stored. */
  attributeModels(projectId: string, typeId: string): Promise<AttributeModelRow[]>;
  /** `device.deleted` removes the device's history (it has no foreign key: one would tax every insert). */
  bus: Pick<EventBus, 'on'>;
  /** Forgets a deleted device's current values not yet written (current-cache.ts). */
  forgetDevice: (deviceId: string) => void;
  logger?: { warn(obj: object, msg: string): void };
  clock?: () => number;
}

export interface RangeQuery {
  start_time?: number;
  end_time?: number;
}

/**
 * The time range of a query (http-api.md §3 "backwards from now"): both times given → that range (at
 * most 30 days, start ≤ end); `end_time` alone → the 30 days up to it; `start_time` alone → from now back
 * to it, at most 30 days; neither → the last 30 days. Newest-first pages then start at the range's end.
 */
export function resolveRange(q: RangeQuery, now: number): { from: number; to: number } {
  if (q.start_time !== undefined && q.end_time !== undefined) {
    if (q.start_time > q.end_time)
      throw new BadRequest('start_time must not be after end_time', [
        { path: 'start_time', message: 'after end_time' },
      ]);
    if (q.end_time - q.start_time > MAX_RANGE_MS)
      throw new BadRequest('The time range must not exceed 30 days', [
        { path: 'end_time', message: 'range over 30 days' },
      ]);
    return { from: q.start_time, to: q.end_time };
  }
  if (q.start_time !== undefined) {
    // A start in the future leaves an empty range at it (nothing is stored after now to find).
    const to = Math.max(now, q.start_time);
    return { from: Math.max(q.start_time, to - MAX_RANGE_MS), to };
  }
  const to = q.end_time ?? now;
  return { from: to - MAX_RANGE_MS, to };
}

/** Reads of attribute telemetry: current values with their models, series, aggregates, CSV. */
export function createHistoryService({
  history,
  values,
  devices,
  attributeModels,
  bus,
  forgetDevice,
  logger,
  clock = Date.now,
}: HistoryServiceDeps) {
  // A deleted device's values not yet written are forgotten on every node; its history is removed once,
  // by the node where it was deleted (docs/cluster.md §4).
  bus.on('device.deleted', ({ deviceId }) => forgetDevice(deviceId));
  bus.on(
    'device.deleted',
    ({ deviceId }) => {
      history
        .removeDevices([deviceId])
        .catch((err: unknown) => logger?.warn({ err, deviceId }, 'history of a deleted device not removed'));
    },
    { localOnly: true },
  );
  const modelCache = new TtlCache<AttributeModelRow[]>(5_000, clock);
  // Attribute models changed on any node: read them again.
  bus.on('device_type.changed', ({ projectId }) => modelCache.invalidate(projectId));
  const modelsOf = (projectId: string, typeId: string) =>
    modelCache.get(projectId, typeId, () => attributeModels(projectId, typeId));

  /** Models by identifier, built once per loaded list (not once per report). */
  const byIdentifier = new WeakMap<AttributeModelRow[], ReadonlyMap<string, AttributeModelRow>>();
  const indexed = (list: AttributeModelRow[]) => {
    let map = byIdentifier.get(list);
    if (!map) byIdentifier.set(list, (map = new Map(list.map((m) => [m.identifier, m]))));
    return map;
  };
  /** What ingest checks reports against (cached for a few seconds; see the issue note). */
  const modelLookup: ModelLookup = Object.assign(
    async (projectId: string, typeId: string) => indexed(await modelsOf(projectId, typeId)),
    {
      cached(projectId: string, typeId: string) {
        const hit = modelCache.peek(projectId, typeId);
        return hit && indexed(hit.value);
      },
    },
  );

  return {
    modelLookup,

    /** `GET /api/v1/device/:id/attributes`: current values with their models; `model.name` falls back to the identifier. */
    async attributes(scope: Scope, deviceId: string) {
      const device = await deviceInScope(devices, scope, deviceId);
      const [rows, models] = await Promise.all([
        values.list(scope.projectId, deviceId),
        device.typeId ? attributeModels(scope.projectId, device.typeId) : Promise.resolve([]),
      ]);
      const byId = new Map(models.map((m) => [m.identifier, m]));
      return rows.map((r) => {
        const model = byId.get(r.identifier);
        return {
          identifier: r.identifier,
          value: r.value,
          attr_type: r.attrType,
          data_type: r.dataType,
          ts: r.ts,
          model: {
            name: model?.name || r.identifier,
            attr_type: r.attrType,
            data_type: model?.dataType ?? r.dataType,
            data_options: model?.options ?? {},
            ...(model?.unit ? { unit: model.unit } : {}),
          },
        };
      });
    },

    /** One page of an attribute's history, newest first (http-api.md §3). */
    async series(
      scope: Scope,
      deviceId: string,
      identifier: string,
      q: RangeQuery & { page: number; page_records: number },
    ) {
      await deviceInScope(devices, scope, deviceId);
      const { from, to } = resolveRange(q, clock());
      const points = await history.series(
        scope.projectId,
        deviceId,
        identifier,
        from,
        to,
        q.page_records,
        (q.page - 1) * q.page_records,
      );
      // `name` is the identifier, as the vendor's clients read it (the display name is the model's, on /attributes).
      return points.map((p) => ({
        ts: p.ts,
        timestamp: new Date(p.ts).toISOString(),
        name: identifier,
        value: p.value,
        type: p.dataType,
      }));
    },

    /** Numeric aggregates per interval for one or several identifiers (beyond the vendor). */
    async aggregate(
      scope: Scope,
      deviceId: string,
      q: RangeQuery & { identifiers: string[]; fn: Aggregate; interval_ms: number },
    ) {
      await deviceInScope(devices, scope, deviceId);
      const { from, to } = resolveRange(q, clock());
      if ((to - from) / q.interval_ms > MAX_BUCKETS) {
        throw new BadRequest(`At most ${MAX_BUCKETS} intervals per call: use a longer interval or a shorter range`, [
          { path: 'interval', message: 'too many intervals' },
        ]);
      }
      const buckets = await history.aggregate(scope.projectId, deviceId, q.identifiers, q.fn, from, to, q.interval_ms);
      const series = Object.fromEntries(
        q.identifiers.map((i) => [i, [] as Array<{ ts: number; value: number | null }>]),
      );
      for (const b of buckets) series[b.identifier]!.push({ ts: b.ts, value: b.value });
      return { fn: q.fn, interval_ms: q.interval_ms, start_time: from, end_time: to, series };
    },

    /**
     * CSV of every value of identifiers in a range, oldest first: `ts,timestamp,identifier,value`.
     * Checked before the first line is produced, then read in pages, so memory stays bounded.
     */
    async exportCsv(
      scope: Scope,
      deviceId: string,
      q: RangeQuery & { identifiers: string[] },
    ): Promise<AsyncIterable<string>> {
      await deviceInScope(devices, scope, deviceId);
      const { from, to } = resolveRange(q, clock());
      return (async function* () {
        yield 'ts,timestamp,identifier,value\n';
        let after: number | undefined;
        for (;;) {
          const rows = await history.range(scope.projectId, deviceId, q.identifiers, from, to, after, EXPORT_PAGE);
          if (!rows.length) return;
          // A page boundary must not split one millisecond: the next page starts after the last whole one.
          const last = rows.at(-1)!.ts;
          const whole = rows.length === EXPORT_PAGE && rows[0]!.ts !== last ? rows.filter((r) => r.ts !== last) : rows;
          yield whole
            .map((r) => `${r.ts},${new Date(r.ts).toISOString()},${csvCell(r.identifier)},${csvCell(r.value)}\n`)
            .join('');
          if (rows.length < EXPORT_PAGE) return;
          after = whole.at(-1)!.ts;
        }
      })();
    },

    /** `attributes_remove`: current values go; history too only when asked. */
    async remove(scope: Scope, deviceId: string, keys: string[], withHistory = false): Promise<void> {
      await deviceInScope(devices, scope, deviceId);
      await values.remove(scope.projectId, deviceId, keys);
      if (withHistory) await history.remove(scope.projectId, deviceId, keys);
    },
  };
}
export type HistoryService = ReturnType<typeof createHistoryService>;
