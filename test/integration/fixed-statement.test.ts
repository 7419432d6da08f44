import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixedStatement, rowsOf, type Database } from '../../src/db/client.ts';
import { openTestDatabase } from '../helpers/db.ts';

/**
 * Statements of the hot paths built once (src/db/client.ts `fixedStatement`), run on the test's database
 * (PGlite, or PostgreSQL with TEST_DATABASE_URL, where they are prepared), and the storage setting the
 * presence flush relies on.
 */
let database: Database;
beforeAll(async () => {
  database = await openTestDatabase();
});
afterAll(() => database?.close());

describe('fixedStatement', () => {
  const statement = fixedStatement(
    ['a', 'b', 'label'],
    (p) => sql`select ${p.a}::int8 - ${p.b}::int8 as diff, ${p.label}::text as label, ${p.a}::int8 * 2 as twice`,
  );

  it('builds its text once, one placeholder per use of a name', () => {
    expect(statement.text).toBe('select $1::int8 - $2::int8 as diff, $3::text as label, $4::int8 * 2 as twice');
  });

  it('sends each value in every place of its name, run after run', async () => {
    for (const [a, b, label] of [
      [10, 3, 'first'],
      [1, 5, 'second, with a comma'],
    ] as const) {
      const rows = rowsOf<{ diff: string | number; label: string; twice: string | number }>(
        await statement.run(database.db, { label, b, a }),
      );
      expect(rows.map((r) => ({ ...r, diff: Number(r.diff), twice: Number(r.twice) }))).toEqual([
        { diff: a - b, label, twice: a * 2 },
      ]);
    }
  });

  it('refuses a value it would not send as drizzle does (an object, an array, a date)', async () => {
    for (const bad of [{ x: 1 }, [1, 2], new Date(), undefined])
      await expect(statement.run(database.db, { a: 1, b: 2, label: bad as never })).rejects.toThrow(/label is not/);
  });

  it('refuses a statement with a value that is not a placeholder (it would be fixed into every run)', () => {
    expect(() => fixedStatement(['a'], (p) => sql`select ${p.a}::int8 + ${1}::int8`)).toThrow(/not a placeholder/);
  });
});

describe('storage settings', () => {
  it('leaves room on the pages of the tables rewritten all the time (HOT updates: docs/scaling.md §4)', async () => {
    const rows = rowsOf<{ relname: string; reloptions: string[] | string | null }>(
      await database.db.execute(
        sql`select relname, reloptions from pg_class where relname in ('devices', 'attribute_values') order by relname`,
      ),
    );
    const options = Object.fromEntries(rows.map((r) => [r.relname, String(r.reloptions)]));
    expect(options).toEqual({
      attribute_values: expect.stringContaining('fillfactor=70'),
      devices: expect.stringContaining('fillfactor=50'),
    });
  });
});
