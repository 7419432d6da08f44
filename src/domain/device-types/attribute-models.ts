import { z } from 'zod';
import type { AttributeModelRow } from '../../db/repositories/device-types.repository.ts';
import { NotFound } from '../../errors.ts';
import { newId } from '../../lib/ids.ts';
import type { Scope } from '../auth/principal.ts';
import { parseOptions } from './parse-options.ts';
import { duplicate, type TypePartsContext } from './type-parts.ts';
import { attributeView } from './views.ts';

export const ATTRIBUTE_DATA_TYPES = ['number', 'boolean', 'string', 'object', 'array'] as const;
export type AttributeDataType = (typeof ATTRIBUTE_DATA_TYPES)[number];

const OptionText = z.string().max(64);

/** What `data_options` of an attribute model may hold, per data type (http-api.md §4). */
export const attributeDataOptions = {
  number: z
    .object({
      min: z.number().optional(),
      max: z.number().optional(),
      step: z.number().positive().optional(),
      precision: z.number().int().min(0).max(15).optional(),
    })
    .strict()
    .refine((o) => o.min === undefined || o.max === undefined || o.min <= o.max, 'min must not exceed max'),
  string: z
    .object({
      max_length: z.number().int().min(1).max(65_536).optional(),
      choices: z.array(z.string().max(256)).min(1).max(100).optional(),
    })
    .strict()
    .refine(
      (o) => o.max_length === undefined || !o.choices?.some((c) => c.length > o.max_length!),
      'choices must fit in max_length',
    ),
  boolean: z.object({ true_text: OptionText.optional(), false_text: OptionText.optional() }).strict(),
  object: z.object({}).strict(),
  array: z.object({}).strict(),
} satisfies Record<AttributeDataType, z.ZodType>;

export interface AttributeModelInput {
  identifier: string;
  name: string;
  data_type: AttributeDataType;
  unit?: string;
  data_options?: Record<string, unknown>;
}
export type AttributeModelPatch = Partial<Omit<AttributeModelInput, 'identifier'>>;

/** A device type's attribute models (http-api.md §4). */
export function createAttributeModels({ types, clock, onTypeChanged, mustGetType }: TypePartsContext) {
  async function mustGetAttribute(projectId: string, typeId: string, identifier: string) {
    await mustGetType(projectId, typeId);
    const row = await types.attribute(projectId, typeId, identifier);
    if (!row) throw new NotFound('Attribute model');
    return row;
  }

  return {
    /** The type's attribute models as stored (for telemetry and the device attribute reads). */
    attributeModels(projectId: string, typeId: string): Promise<AttributeModelRow[]> {
      return types.attributes(projectId, typeId);
    },

    async listAttributes(scope: Scope, typeId: string) {
      await mustGetType(scope.projectId, typeId);
      return { items: (await types.attributes(scope.projectId, typeId)).map(attributeView) };
    },

    async createAttribute(scope: Scope, typeId: string, input: AttributeModelInput) {
      await mustGetType(scope.projectId, typeId);
      const options = parseOptions(attributeDataOptions[input.data_type], input.data_options ?? {}, 'data_options');
      const now = clock();
      const id = newId(now);
      try {
        await types.insertAttribute({
          id,
          projectId: scope.projectId,
          deviceTypeId: typeId,
          identifier: input.identifier,
          name: input.name,
          dataType: input.data_type,
          unit: input.unit ?? '',
          options,
          createTime: now,
          updateTime: now,
        });
      } catch (err) {
        duplicate(err, 'attribute_model_ident', `The device type already has an attribute model "${input.identifier}"`);
      }
      onTypeChanged(scope.projectId, typeId);
      return { id, identifier: input.identifier };
    },

    /** A new data_type without new data_options clears the options: the old ones described another type. */
    async updateAttribute(scope: Scope, typeId: string, identifier: string, patch: AttributeModelPatch) {
      const row = await mustGetAttribute(scope.projectId, typeId, identifier);
      const dataType = patch.data_type ?? (row.dataType as AttributeDataType);
      const typeChanged = dataType !== row.dataType;
      const options =
        patch.data_options !== undefined
          ? parseOptions(attributeDataOptions[dataType], patch.data_options, 'data_options')
          : typeChanged
            ? {}
            : undefined;
      await types.updateAttribute(scope.projectId, row.id, {
        ...(patch.name !== undefined ? { name: patch.name } : {}),
        ...(patch.data_type !== undefined ? { dataType } : {}),
        ...(patch.unit !== undefined ? { unit: patch.unit } : {}),
        ...(options !== undefined ? { options } : {}),
        updateTime: clock(),
      });
      onTypeChanged(scope.projectId, typeId);
      const updated = await types.attribute(scope.projectId, typeId, identifier);
      if (!updated) throw new NotFound('Attribute model');
      return attributeView(updated);
    },

    async deleteAttribute(scope: Scope, typeId: string, identifier: string) {
      const row = await mustGetAttribute(scope.projectId, typeId, identifier);
      await types.deleteAttribute(scope.projectId, row.id);
      onTypeChanged(scope.projectId, typeId);
    },
  };
}
