import { deviceInScope } from './device-in-scope.ts';
import type { z } from 'zod';
import type { DeviceInfosRepository } from '../../db/repositories/device-infos.repository.ts';
import type { DevicesRepository } from '../../db/repositories/devices.repository.ts';
import { BadRequest, type FieldError } from '../../errors.ts';
import type { Scope } from '../auth/principal.ts';
import {
  customInfoValueSchema,
  STANDARD_INFO_TYPES,
  STANDARD_INFOS,
  standardInfoOptions,
  type StandardInfoType,
} from '../device-types/extend-info-types.ts';

export interface ExtendInfosServiceDeps {
  devices: Pick<DevicesRepository, 'get'>;
  infos: DeviceInfosRepository;
  clock?: () => number;
}

const isStandard = (t: string): t is StandardInfoType => (STANDARD_INFO_TYPES as string[]).includes(t);

function issuesOf(prefix: string, error: z.ZodError): FieldError[] {
  return error.issues.map((i) => ({ path: [prefix, ...i.path.map(String)].join('.'), message: i.message }));
}

/**
 * A device's extended information (http-api.md §3): the built-in standard infos (location,
 * contact) and the custom infos its type defines, each validated against its definition.
 */
export function createExtendInfosService({ devices, infos, clock = Date.now }: ExtendInfosServiceDeps) {
  const mustGet = (scope: Scope, id: string) => deviceInScope(devices, scope, id);

  return {
    async list(scope: Scope, deviceId: string) {
      const device = await mustGet(scope, deviceId);
      const [values, defs] = await Promise.all([
        infos.values(scope.projectId, deviceId),
        device.typeId ? infos.definitions(scope.projectId, device.typeId) : Promise.resolve([]),
      ]);
      const byId = new Map(values.map((v) => [v.infoId, v]));
      const standard = STANDARD_INFO_TYPES.map((type) => {
        const v = byId.get(type);
        return {
          id: type,
          info_type: type,
          name: STANDARD_INFOS[type].name,
          descr: STANDARD_INFOS[type].descr,
          value: v?.value ?? {},
          options: standardInfoOptions(type),
          create_time: v?.createTime ?? device.createTime,
          update_time: v?.updateTime ?? device.createTime,
          is_standard: true,
        };
      });
      const custom = defs
        .filter((d) => d.enabled)
        .map((d) => {
          const v = byId.get(d.id);
          return {
            id: d.id,
            info_type: d.infoType,
            name: d.name,
            descr: d.descr,
            value: v?.value ?? null,
            options: d.options,
            create_time: v?.createTime ?? d.createTime,
            update_time: v?.updateTime ?? d.updateTime,
            is_standard: false,
          };
        });
      return { items: [...standard, ...custom] };
    },

    /** Merges the given fields into a standard info; answers the whole updated info. */
    async setStandard(scope: Scope, deviceId: string, infoType: string, value: Record<string, unknown>) {
      await mustGet(scope, deviceId);
      if (!isStandard(infoType)) {
        throw new BadRequest(`Unknown standard info type "${infoType}" (one of ${STANDARD_INFO_TYPES.join(', ')})`, [
          { path: 'info_type', message: 'unknown' },
        ]);
      }
      const parsed = STANDARD_INFOS[infoType].fields.safeParse(value);
      if (!parsed.success) throw new BadRequest(`Invalid ${infoType} value`, issuesOf('value', parsed.error));
      const [current] = await infos.valuesOf(scope.projectId, deviceId, [infoType]);
      const merged = { ...((current?.value as Record<string, unknown> | undefined) ?? {}), ...parsed.data };
      await infos.upsert(scope.projectId, deviceId, [{ infoId: infoType, value: merged }], clock());
      return { [infoType]: merged };
    },

    /** Sets custom infos by definition id; all are validated before any is written. */
    async setCustom(scope: Scope, deviceId: string, values: Record<string, unknown>) {
      const device = await mustGet(scope, deviceId);
      const defs = device.typeId ? await infos.definitions(scope.projectId, device.typeId) : [];
      const byId = new Map(defs.filter((d) => d.enabled).map((d) => [d.id, d]));
      const errors: FieldError[] = [];
      const accepted: Array<{ infoId: string; value: unknown }> = [];
      for (const [id, raw] of Object.entries(values)) {
        const def = byId.get(id);
        if (!def) {
          errors.push({ path: `infos.${id}`, message: "not an extended info of the device's type" });
          continue;
        }
        const parsed = customInfoValueSchema(def.infoType, def.options).safeParse(raw);
        if (parsed.success) accepted.push({ infoId: id, value: parsed.data });
        else errors.push(...issuesOf(`infos.${id}`, parsed.error));
      }
      if (errors.length)
        throw new BadRequest(`Invalid extended info: ${errors[0]!.path}: ${errors[0]!.message}`, errors);
      await infos.upsert(scope.projectId, deviceId, accepted, clock());
      return Object.fromEntries(accepted.map((a) => [a.infoId, a.value]));
    },
  };
}
export type ExtendInfosService = ReturnType<typeof createExtendInfosService>;
