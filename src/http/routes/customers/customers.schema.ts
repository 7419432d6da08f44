import { z } from 'zod';
import { Account, Descr, Email, Id, Mobile, Name, TagKeys, Tags } from '../common.schema.ts';

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
/**
 * Most customers one unpaged list answers. The vendor documents `GET /api/v1/customers` without paging and
 * its clients read every customer from one call; real projects have hundreds to a few thousand. 10,000
 * rows (≈3 MB of JSON, one indexed query) keeps that whole while bounding a call.
 */
export const CUSTOMER_LIST_CAP = 10_000;
/** Both optional: absent → the whole list (up to the cap); either given → one page. */
export const CustomerListQuery = z.object({
  page: z.coerce.number().int().min(1).max(1_000_000).optional(),
  page_records: z.coerce.number().int().min(1).max(500).optional(),
});
export const CustomerList = z.object({
  items: z.array(Customer),
  total: z.number().int(),
  page_total: z.number().int(),
});

/**
 * The length bound that holds for every project; the project's minimum (8 unless its settings say
 * `customer_password_min_length`, at least 6) is checked by the customers service.
 */
const CustomerPassword = z.string().min(1, 'must not be empty').max(128);

export const CreateCustomerBody = z.object({
  name: Name,
  account: Account,
  password: CustomerPassword,
  descr: Descr.optional(),
  email: Email.optional(),
  mobile: Mobile.optional(),
  tags: Tags.optional(),
  locale: Locale.optional(),
});
export const CreatedCustomer = z.object({ id: z.string(), name: z.string() });

export const UpdateCustomerBody = z
  .object({
    name: Name.optional(),
    descr: Descr.optional(),
    email: Email.optional(),
    mobile: Mobile.optional(),
    locale: Locale.optional(),
  })
  .refine(
    (b) => Object.values(b).some((v) => v !== undefined),
    'give at least one of name, descr, email, mobile, locale',
  );
export const PasswordBody = z.object({ password: CustomerPassword });
export const TagsBody = z.object({ tags: Tags });
export const KeysBody = z.object({ keys: TagKeys });
export const DevicesBody = z.object({ devices: z.array(Id).min(1, 'give at least one device id').max(500) });
