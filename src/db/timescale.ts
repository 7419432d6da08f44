import { sql } from 'drizzle-orm';
import { rowsOf, type Db } from './client.ts';

/**
 * Enables TimescaleDB when the server offers it (hypertables come with telemetry: architecture.md §5).
 * Returns whether the extension is active; never fails the start when it is not available.
 */
export async function enableTimescale(db: Db, log: { warn(obj: object, msg: string): void }): Promise<boolean> {
  const available = await db.execute(
    sql`select installed_version as installed from pg_available_extensions where name = 'timescaledb'`,
  );
  const row = rowsOf<{ installed: string | null }>(available)[0];
  if (!row) return false;
  if (row.installed) return true;
  try {
    await db.execute(sql`create extension if not exists timescaledb`);
    return true;
  } catch (err) {
    log.warn({ err }, 'TimescaleDB is available but could not be enabled; history stays in plain tables');
    return false;
  }
}

/**
 * The edition of the TimescaleDB the server runs (`timescaledb.license`): 'timescale' (community:
 * compression and retention policies) or 'apache' (Apache-2 edition: hypertables and drop_chunks,
 * no policies). An unreadable setting counts as 'apache'.
 */
export async function timescaleLicense(db: Db): Promise<string> {
  const rows = rowsOf<{ license: string | null }>(
    await db.execute(sql`select current_setting('timescaledb.license', true) as license`),
  );
  return rows[0]?.license || 'apache';
}
