import { z } from 'zod';
import { Descr, Name, Tags } from '../common.schema.ts';

export const ProjectInfo = z.object({
  id: z.string(),
  name: z.string(),
  descr: z.string(),
  tags: z.record(z.string(), z.string()),
});
export const ProjectUpdateBody = z
  .object({ name: Name.optional(), descr: Descr.optional(), tags: Tags.optional() })
  .refine((b) => Object.keys(b).length > 0, 'give at least one of name, descr, tags');

const Limit = (max: number) => z.number().int().min(0).max(max).nullable().optional();
export const ProjectSettings = z.object({
  device_rate_limit: z.number().nullable(),
  history_retention_days: z.number().nullable(),
  customer_password_min_length: z.number().nullable(),
  effective: z.object({
    device_rate_limit: z.number(),
    history_retention_days: z.number(),
    customer_password_min_length: z.number(),
  }),
});
export const ProjectSettingsBody = z
  .object({
    /** Messages per second one device may send (1–100,000); null = the server's MQTT_RATE_LIMIT. */
    device_rate_limit: Limit(100_000).refine((v) => v !== 0, 'must be at least 1'),
    /** Days of history kept; 0 = forever; null = the server's HISTORY_RETENTION_DAYS. */
    history_retention_days: Limit(36_500),
    /** Shortest customer password (6–128); null = 8. */
    customer_password_min_length: z.number().int().min(6, 'must be at least 6').max(128).nullable().optional(),
  })
  .strict()
  .refine(
    (b) => Object.keys(b).length > 0,
    'give device_rate_limit, history_retention_days or customer_password_min_length',
  );
