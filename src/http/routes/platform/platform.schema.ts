import { z } from 'zod';
import { Descr, Name, Tags } from '../common.schema.ts';

export const CreateProjectBody = z.object({
  name: Name,
  descr: Descr.optional(),
  tags: Tags.optional(),
  device_quota: z.number().int().min(0).max(2_147_483_647).nullable().optional(),
});
export const CreatedProject = z.object({
  id: z.string(),
  name: z.string(),
  project_key: z.string(),
  app: z.object({ app_id: z.string(), access_key: z.string(), secret_key: z.string() }),
  admin: z.object({ account: z.string(), password: z.string() }),
});
export const ProjectSummary = z.object({
  id: z.string(),
  name: z.string(),
  descr: z.string(),
  project_key: z.string(),
  create_time: z.number(),
  device_count: z.number(),
});
