import { describe, expect, it } from 'vitest';
import { appErrorOfDatabase, Duplicate, MissingReference, PartitionMissing, translated } from '../../src/db/errors.ts';
import { serializeError } from '../../src/logger.ts';

/** drizzle wraps the driver's error; the parameters end up in the message. */
function drizzleError(code: string, params: string) {
  const cause = Object.assign(new Error('insert or update violates a constraint'), { code, constraint_name: 'x_fk' });
  return Object.assign(
    new Error(`Failed query: insert into "customers" ("password_hash") values ($1)\nparams: ${params}`),
    { name: 'DrizzleQueryError', cause },
  );
}

describe('database errors', () => {
  it('map foreign-key and unique violations to 404 and 409, anything else to nothing', () => {
    expect(appErrorOfDatabase(drizzleError('23503', 'x'))?.errcode).toBe(404);
    expect(appErrorOfDatabase(drizzleError('23505', 'x'))?.errcode).toBe(409);
    expect(appErrorOfDatabase(drizzleError('22P02', 'x'))).toBeUndefined();
    expect(appErrorOfDatabase(new Error('boom'))).toBeUndefined();
  });

  it('translate to the named errors a repository chooses, keeping the driver error as cause', () => {
    const map = { unique: { x_fk: 'thing' }, foreignKey: { x_fk: 'parent' } };
    const dup = translated(drizzleError('23505', 'x'), map);
    expect(dup).toBeInstanceOf(Duplicate);
    expect((dup as Duplicate).what).toBe('thing');
    expect((dup as Duplicate).cause).toBeInstanceOf(Error);
    const fk = translated(drizzleError('23503', 'x'), map);
    expect(fk).toBeInstanceOf(MissingReference);
    expect((fk as MissingReference).what).toBe('parent');
    // PGlite raises restrict_violation (23001) where PostgreSQL raises 23503 for an ON DELETE RESTRICT key.
    const restrict = translated(drizzleError('23001', 'x'), map);
    expect(restrict).toBeInstanceOf(MissingReference);
    expect(appErrorOfDatabase(drizzleError('23001', 'x'))?.errcode).toBe(404);
    const other = drizzleError('23505', 'x');
    expect(translated(other, { unique: { y_uq: 'y' } })).toBe(other);
    const partition = Object.assign(new Error('no partition of relation "history" found for row'), { code: '23514' });
    expect(translated(partition, {})).toBeInstanceOf(PartitionMissing);
    expect(appErrorOfDatabase(dup)?.errcode).toBe(409);
    expect(appErrorOfDatabase(fk)?.errcode).toBe(404);
  });

  it('are logged without their query parameters', () => {
    const logged = JSON.stringify(serializeError(drizzleError('22P02', '$argon2id$v=19$m=19456,t=2,p=1$secret-hash')));
    expect(logged).not.toContain('argon2id');
    expect(logged).toContain('Failed query: insert into');
    expect(logged).toContain('22P02');
  });
});
