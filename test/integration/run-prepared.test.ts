import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPglite, openPostgres, rowsOf, runPrepared, type Database } from '../../src/db/client.ts';

/**
 * `runPrepared`: the ingest's hot statement runs as a prepared statement on PostgreSQL (one round
 * trip from its second run on) and through drizzle on PGlite, with the same results.
 */
const url = process.env.TEST_DATABASE_URL;

describe.skipIf(!url)('runPrepared on PostgreSQL', () => {
  let database: Database;
  beforeAll(async () => {
    // One connection: the statement prepared by the first call is visible to the next ones.
    database = await openPostgres(url!, { max: 1 });
  });
  afterAll(async () => {
    await database?.close();
  });

  it('prepares the statement once and reuses it with new parameters', async () => {
    const query = (n: number, text: string) =>
      sql`select ${n}::int4 + 1 as n, ${text}::text || '!' as t, ${JSON.stringify({ a: [n] })}::jsonb as j`;
    expect(rowsOf(await runPrepared(database.db, query(1, 'a')))).toEqual([{ n: 2, t: 'a!', j: { a: [1] } }]);
    expect(rowsOf(await runPrepared(database.db, query(41, 'b')))).toEqual([{ n: 42, t: 'b!', j: { a: [41] } }]);
    const prepared = rowsOf<{ statement: string }>(
      await database.db.execute(sql`select statement from pg_prepared_statements`),
    );
    expect(prepared.filter((p) => p.statement.includes("::text || '!'"))).toHaveLength(1);
  });

  it('reports a refused statement as the database error', async () => {
    await expect(runPrepared(database.db, sql`select 1 / ${0}::int4`)).rejects.toMatchObject({ code: '22012' });
  });
});

describe('runPrepared on PGlite', () => {
  it('runs the statement through drizzle', async () => {
    const database = await openPglite();
    try {
      expect(rowsOf(await runPrepared(database.db, sql`select ${41}::int4 + 1 as n`))).toEqual([{ n: 42 }]);
    } finally {
      await database.close();
    }
  });
});
