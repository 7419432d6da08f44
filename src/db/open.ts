import { sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import { openPglite, openPostgres, type Database } from './client.ts';
import { protectDataDir } from '../lib/private-dir.ts';
import { lockDataDir } from './data-dir-lock.ts';
import { enableTimescale } from './timescale.ts';
import { databaseUnavailable } from './unreachable.ts';

const EMBEDDED_VACUUM_MS = 15 * 60_000;

export interface OpenedDatabase extends Database {
  /** TimescaleDB is enabled (PostgreSQL with the extension available). */
  timescale: boolean;
  /** One round trip to the database (the readiness check, http-api.md §8); rejects when it does not answer. */
  ping(): Promise<void>;
}

/** `select 1`: the cheapest statement that proves the database answers. */
function pinger(db: Database['db']): () => Promise<void> {
  return async () => {
    await db.execute(sql`select 1`);
  };
}

/**
 * Opens the configured database and brings its schema up to date: PostgreSQL when DATABASE_URL is
 * set (throws DatabaseUnavailable when it cannot be used), otherwise the embedded PGlite in DATA_DIR
 * (locked to this process; throws DataDirLocked).
 */
export async function openDatabase(
  config: Pick<Config, 'DATABASE_URL' | 'DATA_DIR'>,
  log: Pick<Logger, 'info' | 'warn'>,
): Promise<OpenedDatabase> {
  if (config.DATABASE_URL) {
    const url = config.DATABASE_URL;
    // Not reachable, no such database, login refused: one line naming DATABASE_URL, no stack.
    const pg = await openPostgres(url, { logger: log }).catch((err: unknown) => {
      throw databaseUnavailable(err, url) ?? err;
    });
    try {
      // Before the migrations: the history migration makes a hypertable when the extension is there.
      const timescale = await enableTimescale(pg.db, log);
      await pg.migrate();
      log.info({ driver: 'postgres', timescale }, 'database ready');
      return { ...pg, timescale, ping: pinger(pg.db) };
    } catch (err) {
      await pg.close();
      throw err;
    }
  }
  protectDataDir(config.DATA_DIR);
  const lock = lockDataDir(config.DATA_DIR);
  try {
    const lite = await openPglite({ dataDir: config.DATA_DIR });
    await lite.migrate();
    // A new database's files come out of PGlite's image readable by all; what it writes later follows the umask.
    protectDataDir(config.DATA_DIR);
    log.info({ driver: 'pglite', dataDir: config.DATA_DIR }, 'database ready');
    // PGlite has no autovacuum: without it the planner never gets index-only scans and stale
    // statistics (measured in bench/http-api: counts 33 ms → 19 ms at 100k devices).
    const vacuum = () => {
      lite.client
        .exec('vacuum (analyze)')
        .catch((err: unknown) => log.warn({ err }, 'embedded database vacuum failed'));
    };
    const firstVacuum = setTimeout(vacuum, 60_000).unref();
    const vacuumTimer = setInterval(vacuum, EMBEDDED_VACUUM_MS).unref();
    return {
      db: lite.db,
      driver: 'pglite',
      migrate: lite.migrate,
      timescale: false,
      ping: pinger(lite.db),
      close: async () => {
        clearTimeout(firstVacuum);
        clearInterval(vacuumTimer);
        try {
          await lite.close();
        } finally {
          lock.release();
        }
      },
    };
  } catch (err) {
    lock.release();
    throw err;
  }
}
