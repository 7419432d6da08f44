import { z } from 'zod';
import { Descr, Id, Name, Tags } from '../common.schema.ts';

/** A parent group id; null or '' = a root group. */
const ParentId = z.union([Id, z.literal(''), z.null()]);

export interface GroupNodeOut {
  id: string;
  name: string;
  descr: string;
  tags: Record<string, string>;
  create_time: number;
  children: GroupNodeOut[];
}

const nodeFields = {
  id: z.string(),
  name: z.string(),
  descr: z.string(),
  tags: z.record(z.string(), z.string()),
  create_time: z.number(),
};

/** A node of the group tree, nested to any depth; a named OpenAPI component so the recursion resolves. */
export const GroupNode: z.ZodType<GroupNodeOut> = z.object({
  ...nodeFields,
  get children() {
    return z.array(GroupNode);
  },
});
z.globalRegistry.add(GroupNode, { id: 'DeviceGroupNode' });
export const GroupTree = z.object({ items: z.array(GroupNode) });

export const GroupDetail = z.object({
  id: z.string(),
  name: z.string(),
  descr: z.string(),
  tags: z.record(z.string(), z.string()),
  parent_id: z.string().nullable(),
  create_time: z.number(),
  device_count: z.number().int(),
});

export const CreateGroupBody = z.object({
  name: Name,
  descr: Descr.optional(),
  tags: Tags.optional(),
  parent_id: ParentId.optional(),
});
export const CreatedGroup = z.object({ id: z.string(), name: z.string() });

export const UpdateGroupBody = z
  .object({ name: Name.optional(), descr: Descr.optional(), tags: Tags.optional(), parent_id: ParentId.optional() })
  .refine((b) => Object.values(b).some((v) => v !== undefined), 'give at least one of name, descr, tags, parent_id');
