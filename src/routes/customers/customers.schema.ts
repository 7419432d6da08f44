import { z } from 'zod';
import { Account, Descr, Email, Id, Mobile, Name, Password, TagKeys, Tags } from '../common.schema.ts';

/** A language tag such as `en`, `zh-CN` or `zh_CN`. */
export const Locale = z
  .string()
  .trim()
  .max(35)
  .regex(/^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$/, 'must be a language tag such as en or zh-CN');

export const Customer = z.object({
  id: z.string(),
  account: z.string(),
  name: z.string(),
  descr: z.string(),
  email: z.string(),
  mobile: z.string(),
  tags: z.record(z.string(), z.string()),
  locale: z.string(),
  create_time: z.number(),
  count: z.object({ device_count: z.number().int() }),
});
export const CustomerList = z.object({ items: z.array(Customer), total: z.number().int(), page_total: z.number().int() });

export const CreateCustomerBody = z.object({
  name: Name,
  account: Account,
  password: Password,
  descr: Descr.optional(),
  email: Email.optional(),
  mobile: Mobile.optional(),
  tags: Tags.optional(),
  locale: Locale.optional(),
});
export const CreatedCustomer = z.object({ id: z.string(), name: z.string() });

export const UpdateCustomerBody = z
  .object({ name: Name.optional(), descr: Descr.optional(), email: Email.optional(), mobile: Mobile.optional(), locale: Locale.optional() })
  .refine((b) => Object.values(b).some((v) => v !== undefined), 'give at least one of name, descr, email, mobile, locale');
export const PasswordBody = z.object({ password: Password });
export const TagsBody = z.object({ tags: Tags });
export const KeysBody = z.object({ keys: TagKeys });
export const DevicesBody = z.object({ devices: z.array(Id).min(1, 'give at least one device id').max(500) });
