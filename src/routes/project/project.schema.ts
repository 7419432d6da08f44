import { z } from 'zod';
import { Descr, Name, Tags } from '../common.schema.ts';

export const ProjectInfo = z.object({ id: z.string(), name: z.string(), descr: z.string(), tags: z.record(z.string(), z.string()) });
export const ProjectUpdateBody = z
  .object({ name: Name.optional(), descr: Descr.optional(), tags: Tags.optional() })
  .refine((b) => Object.keys(b).length > 0, 'give at least one of name, descr, tags');
