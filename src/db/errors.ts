import { AppError, Conflict, NotFound } from '../errors.ts';

/**
 * Named database errors: repositories translate the driver's errors into these, so services never see
 * SQLSTATEs or constraint names. `what` is a stable name the repository chooses (e.g. 'device_key',
 * 'account'), not a constraint name; the driver's error stays in `cause` (logged, never shown).
 */
export class Duplicate extends Error {
  constructor(
    readonly what: string,
    options?: { cause?: unknown },
  ) {
    super(`duplicate ${what}`, options);
    this.name = 'Duplicate';
  }
}

/** A foreign key refused the write: the referenced row (`what`) is gone, or a row still references it. */
export class MissingReference extends Error {
  constructor(
    readonly what: string,
    options?: { cause?: unknown },
  ) {
    super(`missing reference ${what}`, options);
    this.name = 'MissingReference';
  }
}

/** A row fell outside every partition of a partitioned table (a partition dropped elsewhere meanwhile). */
export class PartitionMissing extends Error {
  constructor(options?: { cause?: unknown }) {
    super('no partition for the row', options);
    this.name = 'PartitionMissing';
  }
}

/**
 * Whether a write may succeed if tried again: a connection-level failure (the server is down, restarting
 * or unreachable) or a row that fell outside every partition (`PartitionMissing`: the repository forgot
 * its partitions, so the retry creates them again). The ingest retries these, the broker holds the
 * PUBACK for them; services never read SQLSTATEs themselves.
 */
export function isTransientDbError(err: unknown): boolean {
  // The application's own refusals are never the database being away, whatever their message says.
  if (err instanceof AppError) return false;
  if (err instanceof PartitionMissing) return true;
  for (
    let e = err as { code?: unknown; cause?: unknown; message?: unknown } | undefined, depth = 0;
    e && depth < 5;
    e = e.cause as typeof e, depth++
  ) {
    const code = typeof e.code === 'string' ? e.code : '';
    // Connection exception, operator intervention (shutdown, "cannot connect now"; not a statement
    // timeout, 57014, which would fail the same way for ever), insufficient
    // resources, system error, "database is not accepting connections" (ALLOW_CONNECTIONS false),
    // serialization failure / deadlock, read-only transaction (a standby during failover).
    if (/^(08|57P|57000|53|58|55000|40001|40P01|25006)/.test(code)) return true;
    if (
      [
        'ECONNREFUSED',
        'ECONNRESET',
        'EPIPE',
        'ETIMEDOUT',
        'ENOTFOUND',
        'EAI_AGAIN',
        'CONNECTION_CLOSED',
        'CONNECTION_ENDED',
        'CONNECTION_DESTROYED',
        'CONNECT_TIMEOUT',
      ].includes(code)
    )
      return true;
    if (typeof e.message === 'string' && /terminat|connection|closed/i.test(e.message) && !code) return true;
  }
  return false;
}

/** Constraint-name substrings (in the order given) to the `what` of the named error. */
export interface Translation {
  unique?: Record<string, string>;
  foreignKey?: Record<string, string>;
}

/**
 * Throws the named error `err` stands for, or `err` itself when the translation names none of it.
 * Repositories use it in the catch of their writes: `catch (err) { translate(err, { unique: { device_key: 'device_key' } }) }`.
 */
export function translate(err: unknown, map: Translation): never {
  throw translated(err, map);
}

/** The named error `err` stands for, or `err` itself (for callers that rethrow later). */
export function translated(err: unknown, map: Translation): unknown {
  // Already named (an inner write translated it): keep that name, do not wrap it again.
  if (err instanceof Duplicate || err instanceof MissingReference || err instanceof PartitionMissing) return err;
  const e = pgError(err);
  if (!e) return err;
  if (e.code === '23514' && /no partition of relation/.test(e.message ?? ''))
    return new PartitionMissing({ cause: err });
  const table = e.code === '23505' ? map.unique : isForeignKeyCode(e.code) ? map.foreignKey : undefined;
  if (!table) return err;
  const constraint = e.constraint_name ?? e.constraint ?? '';
  for (const [part, what] of Object.entries(table)) {
    if (constraint.includes(part)) {
      return e.code === '23505' ? new Duplicate(what, { cause: err }) : new MissingReference(what, { cause: err });
    }
  }
  return err;
}

/** Runs a write, translating its driver errors (see `translate`). */
export async function translating<T>(map: Translation, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    translate(err, map);
  }
}

/** Postgres error details, whichever driver raised them (drizzle wraps the driver's error in `cause`). */
interface PgErrorLike {
  code?: string;
  message?: string;
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
function uniqueViolation(err: unknown): string | undefined {
  const e = pgError(err);
  return e?.code === '23505' ? (e.constraint_name ?? e.constraint ?? '') : undefined;
}

/** The name of the foreign key a delete/update broke, or undefined for any other error. */
function foreignKeyViolation(err: unknown): string | undefined {
  const e = pgError(err);
  return isForeignKeyCode(e?.code) ? (e?.constraint_name ?? e?.constraint ?? '') : undefined;
}

/**
 * A foreign key refused the write: 23503, or 23001 (restrict_violation), which PGlite raises where
 * PostgreSQL raises 23503 for an `ON DELETE RESTRICT` key (deleting a device type devices still use).
 */
function isForeignKeyCode(code: string | undefined): boolean {
  return code === '23503' || code === '23001';
}

/**
 * The last line of defence for races between a service's check and its write (a parent deleted in
 * between, a duplicate inserted in between): such errors are the caller's "not found" / "conflict",
 * never a server fault. Services still map the cases they can name more precisely.
 */
export function appErrorOfDatabase(err: unknown): AppError | undefined {
  if (err instanceof MissingReference) return new NotFound('A referenced resource');
  if (err instanceof Duplicate) return new Conflict('The resource already exists or conflicts with another one');
  if (foreignKeyViolation(err) !== undefined) return new NotFound('A referenced resource');
  const unique = uniqueViolation(err);
  if (unique !== undefined) return new Conflict('The resource already exists or conflicts with another one');
  return undefined;
}
