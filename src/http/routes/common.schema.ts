import { z } from 'zod';

/** Field rules shared by every area: lengths are bounded so nothing unbounded reaches the database. */
export const Id = z.string().min(1).max(64);
export const IdParams = z.object({ id: Id });
export const Name = z.string().trim().min(1, 'must not be empty').max(128);
export const Descr = z.string().max(1024);
export const Account = z.string().trim().min(1).max(64);
export const Password = z.string().min(8, 'must be at least 8 characters').max(128);
export const Email = z.union([z.literal(''), z.email().max(254)]);
export const Mobile = z.string().max(32);

/** Flat string→string maps (http-api.md §1), at most 64 entries. */
export const Tags = z
  .record(z.string().min(1).max(64), z.string().max(256))
  .refine((t) => Object.keys(t).length <= 64, 'at most 64 tags');
export const TagKeys = z.array(z.string().min(1).max(64)).max(64);

export const Timestamp = z.number().int().nonnegative();

/**
 * `page` from 1, `page_records` 1–max (http-api.md §3, device list). `page` is bounded so the offset
 * stays a number the database takes (a page of 1e20 would otherwise reach it as an overflowing bigint).
 */
export const pagingQuery = (max = 500, fallback = 20) =>
  z.object({
    page: z.coerce.number().int().min(1).max(1_000_000).default(1),
    page_records: z.coerce.number().int().min(1).max(max).default(fallback),
  });

export const paged = <T extends z.ZodType>(item: T) =>
  z.object({ items: z.array(item), total: z.number().int(), page_total: z.number().int() });

export function pageOf<T>(items: T[], total: number, pageRecords: number) {
  return { items, total, page_total: Math.ceil(total / pageRecords) };
}

/** A query flag sent as `1`/`true`. */
export const Flag = z
  .enum(['0', '1', 'true', 'false'])
  .optional()
  .transform((v) => v === '1' || v === 'true');
