import type { AppError } from '../errors.ts';
import { Conflict, NotFound } from '../errors.ts';

/** Postgres error details, whichever driver raised them (drizzle wraps the driver's error in `cause`). */
interface PgErrorLike {
  code?: string;
  constraint?: string;
  constraint_name?: string;
  cause?: unknown;
}

function pgError(err: unknown): PgErrorLike | undefined {
  let e = err as PgErrorLike | undefined;
  for (let depth = 0; e && depth < 4; depth++) {
    if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) return e;
    e = e.cause as PgErrorLike | undefined;
  }
  return undefined;
}

/** The name of the unique constraint an insert/update broke, or undefined for any other error. */
export function uniqueViolation(err: unknown): string | undefined {
  const e = pgError(err);
  return e?.code === '23505' ? (e.constraint_name ?? e.constraint ?? '') : undefined;
}

/** The name of the foreign key a delete/update broke, or undefined for any other error. */
export function foreignKeyViolation(err: unknown): string | undefined {
  const e = pgError(err);
  return e?.code === '23503' ? (e.constraint_name ?? e.constraint ?? '') : undefined;
}

/**
 * The last line of defence for races between a service's check and its write (a parent deleted in
 * between, a duplicate inserted in between): such errors are the caller's "not found" / "conflict",
 * never a server fault. Services still map the cases they can name more precisely.
 */
export function appErrorOfDatabase(err: unknown): AppError | undefined {
  if (foreignKeyViolation(err) !== undefined) return new NotFound('A referenced resource');
  const unique = uniqueViolation(err);
  if (unique !== undefined) return new Conflict('The resource already exists or conflicts with another one');
  return undefined;
}
