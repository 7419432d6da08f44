import { z } from 'zod';

/**
 * Extended information (http-api.md §3 "Extended information").
 *
 * Standard infos are built in and exist for every device: `location` and `contact`, each an object of
 * scalar fields. Custom infos are defined per device type; each definition has an `info_type` and
 * `options` that constrain its value.
 */
export const STANDARD_INFOS = {
  location: {
    name: 'Location',
    descr: 'Where the device is installed',
    fields: z
      .object({
        latitude: z.number().min(-90).max(90),
        longitude: z.number().min(-180).max(180),
        address: z.string().max(512),
      })
      .partial()
      .strict(),
  },
  contact: {
    name: 'Contact',
    descr: 'Who to call about the device',
    fields: z
      .object({ name: z.string().max(128), phone: z.string().max(64), email: z.string().max(254) })
      .partial()
      .strict(),
  },
} as const;
export type StandardInfoType = keyof typeof STANDARD_INFOS;
export const STANDARD_INFO_TYPES = Object.keys(STANDARD_INFOS) as StandardInfoType[];

/** Field list of a standard info, as shown in its `options`. */
export function standardInfoOptions(type: StandardInfoType): Record<string, unknown> {
  return { fields: Object.keys(STANDARD_INFOS[type].fields.shape) };
}

/** Custom info types and the options each accepts. */
export const CUSTOM_INFO_TYPES = ['text', 'number', 'boolean', 'enum'] as const;
export type CustomInfoType = (typeof CUSTOM_INFO_TYPES)[number];

export const customInfoOptions = {
  text: z.object({ max_length: z.number().int().min(1).max(4096).optional() }).strict(),
  number: z
    .object({ min: z.number().optional(), max: z.number().optional(), integer: z.boolean().optional() })
    .strict()
    .refine((o) => o.min === undefined || o.max === undefined || o.min <= o.max, 'min must not exceed max'),
  boolean: z.object({}).strict(),
  enum: z.object({ choices: z.array(z.string().min(1).max(128)).min(1).max(100) }).strict(),
} satisfies Record<CustomInfoType, z.ZodType>;

/** The zod schema a value of a custom info must satisfy, derived from its definition. */
export function customInfoValueSchema(type: string, options: Record<string, unknown>): z.ZodType {
  switch (type) {
    case 'text':
      return z.string().max(typeof options.max_length === 'number' ? options.max_length : 4096);
    case 'number': {
      let s = options.integer === true ? z.number().int() : z.number();
      if (typeof options.min === 'number') s = s.min(options.min);
      if (typeof options.max === 'number') s = s.max(options.max);
      return s;
    }
    case 'boolean':
      return z.boolean();
    case 'enum':
      return z.enum(Array.isArray(options.choices) ? (options.choices as [string, ...string[]]) : ['']);
    default:
      return z.never();
  }
}
