import { readFile } from 'node:fs/promises';
import { inject } from 'vitest';
import { openPglite, openPostgres, type Database } from '../../src/db/client.ts';

/**
 * The database of one test file: the shared PostgreSQL of TEST_DATABASE_URL (tests isolate by
 * creating their own projects), or a private embedded PGlite loaded from the migrated snapshot.
 */
export async function openTestDatabase(): Promise<Database> {
  const url = process.env.TEST_DATABASE_URL;
  if (url) return openPostgres(url, { max: 4 });
  const dump = await readFile(inject('pgliteDump'));
  return openPglite({ loadDataDir: new Blob([dump]) });
}
