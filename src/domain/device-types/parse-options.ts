import type { z } from 'zod';
import { BadRequest, type FieldError } from '../../errors.ts';

/** Validates options against the schema of their kind; failures name the field under `field`. */
export function parseOptions(schema: z.ZodType, value: unknown, field: string): Record<string, unknown> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data as Record<string, unknown>;
  const errors: FieldError[] = parsed.error.issues.map((i) => ({
    path: [field, ...i.path.map(String)].join('.'),
    message: i.message,
  }));
  throw new BadRequest(`Invalid input: ${errors[0]?.path ?? field}: ${errors[0]?.message ?? 'invalid'}`, errors);
}
