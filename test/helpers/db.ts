import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import postgres from 'postgres';
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

export interface PrivatePostgres {
  /** The URL of the new database (the server and credentials of TEST_DATABASE_URL). */
  url: string;
  /** Drops the database, ending whatever is still connected to it. */
  drop(): Promise<void>;
}

/**
 * A fresh, migrated PostgreSQL database of its own on the server of TEST_DATABASE_URL, uniquely
 * named; undefined without TEST_DATABASE_URL. For a test file that would disturb the others on the
 * shared database: one that starts a real server (which sets every device offline at start), drops
 * day partitions or ends the database's connections.
 */
export async function createPrivatePostgres(): Promise<PrivatePostgres | undefined> {
  const base = process.env.TEST_DATABASE_URL;
  if (!base) return undefined;
  const name = `iot_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = postgres(base, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database ${name}`);
  } finally {
    await admin.end({ timeout: 5 });
  }
  const url = new URL(base);
  url.pathname = `/${name}`;
  const drop = async () => {
    const sql = postgres(base, { max: 1, onnotice: () => {} });
    try {
      await sql.unsafe(`drop database if exists ${name} with (force)`);
    } finally {
      await sql.end({ timeout: 5 });
    }
  };
  try {
    const db = await openPostgres(url.toString(), { max: 1 });
    try {
      await db.migrate();
    } finally {
      await db.close();
    }
  } catch (err) {
    await drop();
    throw err;
  }
  return { url: url.toString(), drop };
}

/**
 * A database nobody else uses: with TEST_DATABASE_URL a private PostgreSQL database
 * (createPrivatePostgres, its `url` given) dropped when it is closed, else the private embedded PGlite.
 */
export async function openPrivateTestDatabase(): Promise<Database & { url?: string }> {
  const own = await createPrivatePostgres();
  if (!own) return openTestDatabase();
  const database = await openPostgres(own.url, { max: 4 });
  return {
    ...database,
    url: own.url,
    close: async () => {
      try {
        await database.close();
      } finally {
        await own.drop();
      }
    },
  };
}
