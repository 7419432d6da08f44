import { BadRequest, NotFound } from '../../errors.ts';
import { newId } from '../../lib/ids.ts';
import type { Scope } from '../auth/principal.ts';
import {
  customInfoOptions,
  STANDARD_INFO_TYPES,
  STANDARD_INFOS,
  standardInfoOptions,
  type CustomInfoType,
} from './extend-info-types.ts';
import { parseOptions } from './parse-options.ts';
import type { TypePartsContext } from './type-parts.ts';
import { infoDefView } from './views.ts';

export interface ExtendInfoInput {
  info_type: CustomInfoType;
  name: string;
  descr?: string;
  enabled?: boolean;
  options?: Record<string, unknown>;
}
export type ExtendInfoPatch = Partial<Omit<ExtendInfoInput, 'info_type'>>;

/** A device type's extend-info definitions (http-api.md §3 "Extended information"). */
export function createExtendInfoDefinitions({ types, clock, mustGetType }: TypePartsContext) {
  async function mustGetInfoDef(projectId: string, typeId: string, id: string) {
    await mustGetType(projectId, typeId);
    if ((STANDARD_INFO_TYPES as string[]).includes(id)) {
      throw new BadRequest(`${id} is a standard info: it is built in and cannot be changed or deleted`);
    }
    const row = await types.infoDef(projectId, typeId, id);
    if (!row) throw new NotFound('Extend info');
    return row;
  }

  return {
    async listExtendInfos(scope: Scope, typeId: string) {
      const type = await mustGetType(scope.projectId, typeId);
      const standard = STANDARD_INFO_TYPES.map((infoType) => ({
        id: infoType,
        info_type: infoType,
        name: STANDARD_INFOS[infoType].name,
        descr: STANDARD_INFOS[infoType].descr,
        enabled: true,
        options: standardInfoOptions(infoType),
        create_time: type.createTime,
        update_time: type.createTime,
        is_standard: true,
      }));
      const defs = await types.infoDefs(scope.projectId, typeId);
      return { items: [...standard, ...defs.map(infoDefView)] };
    },

    async createExtendInfo(scope: Scope, typeId: string, input: ExtendInfoInput) {
      await mustGetType(scope.projectId, typeId);
      const options = parseOptions(customInfoOptions[input.info_type], input.options ?? {}, 'options');
      const now = clock();
      const id = newId(now);
      await types.insertInfoDef({
        id,
        projectId: scope.projectId,
        deviceTypeId: typeId,
        infoType: input.info_type,
        name: input.name,
        descr: input.descr ?? '',
        enabled: input.enabled ?? true,
        options,
        createTime: now,
        updateTime: now,
      });
      return { id, name: input.name };
    },

    async updateExtendInfo(scope: Scope, typeId: string, infoId: string, patch: ExtendInfoPatch) {
      const row = await mustGetInfoDef(scope.projectId, typeId, infoId);
      const options =
        patch.options !== undefined
          ? parseOptions(customInfoOptions[row.infoType as CustomInfoType], patch.options, 'options')
          : undefined;
      await types.updateInfoDef(scope.projectId, row.id, {
        ...(patch.name !== undefined ? { name: patch.name } : {}),
        ...(patch.descr !== undefined ? { descr: patch.descr } : {}),
        ...(patch.enabled !== undefined ? { enabled: patch.enabled } : {}),
        ...(options !== undefined ? { options } : {}),
        updateTime: clock(),
      });
      const updated = await types.infoDef(scope.projectId, typeId, infoId);
      if (!updated) throw new NotFound('Extend info');
      return infoDefView(updated);
    },

    async deleteExtendInfo(scope: Scope, typeId: string, infoId: string) {
      const row = await mustGetInfoDef(scope.projectId, typeId, infoId);
      await types.deleteInfoDef(scope.projectId, row.id);
    },
  };
}
