import { z } from 'zod';
import { Account, Email, Password, Tags } from '../common.schema.ts';

/** An administrator's display name may be empty (accounts created with the project have one, others may not). */
const AdminName = z.string().trim().max(128);

export const Admin = z.object({
  id: z.string(),
  account: z.string(),
  name: z.string(),
  email: z.string(),
  tags: z.record(z.string(), z.string()),
});
export const AdminList = z.object({ items: z.array(Admin.extend({ create_time: z.number() })) });

export const CreateAdminBody = z.object({
  account: Account,
  password: Password,
  name: AdminName.optional(),
  email: Email.optional(),
  tags: Tags.optional(),
});
export const CreatedAdmin = z.object({ id: z.string(), account: z.string() });

export const UpdateAdminInfoBody = z
  .object({ name: AdminName.optional(), email: Email.optional(), tags: Tags.optional() })
  .refine(
    (b) => b.name !== undefined || b.email !== undefined || b.tags !== undefined,
    'give at least one of name, email, tags',
  );

export const PasswordBody = z.object({ password: Password });
