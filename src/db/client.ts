import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { pino, type Logger } from 'pino';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { sql, type SQL } from 'drizzle-orm';
import { PgDialect, type PgDatabase, type PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { loggerOptions } from '../logger.ts';
import * as schema from './schema/index.ts';

export type Schema = typeof schema;
/** The common surface of both drivers; repositories see only this. */
export type Db = PgDatabase<PgQueryResultHKT, Schema>;
/** A transaction or the database itself: repositories accept either. */
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0] | Db;

export interface Database {
  db: Db;
  driver: 'pglite' | 'postgres';
  /** Applies the SQL migrations of `drizzle/`. */
  migrate(): Promise<void>;
  close(): Promise<void>;
  /** PostgreSQL: this process's connection pool, for the metrics (docs/metrics.md); absent on PGlite. */
  pool?: DatabasePool;
}

export interface DatabasePool {
  /** Connections the pool may open. */
  max: number;
  /** This pool's connections by state, from pg_stat_activity (its own `application_name`). */
  connections(): Promise<{ active: number; idle: number }>;
}

const dialect = new PgDialect();

/**
 * Runs one statement on its own (autocommit: it is its own transaction). On PostgreSQL it runs as a
 * prepared statement of the connection: drizzle sends every statement unprepared, and postgres.js
 * then needs two round trips (Parse/Describe to learn the parameter types, then Bind/Execute); a
 * prepared one needs one from its second run on. For hot statements whose text does not vary with
 * the data (each distinct text stays prepared on every connection). PGlite runs it through drizzle.
 */
export async function runPrepared(db: Db, query: SQL): Promise<unknown> {
  const client = postgresClient(db);
  if (!client) return db.execute(query);
  const { sql: text, params } = dialect.sqlToQuery(query);
  return client.unsafe(text, params as postgres.ParameterOrJSON<never>[], { prepare: true });
}

/** The postgres.js client behind `db`, or undefined on PGlite. */
function postgresClient(db: Db): postgres.Sql | undefined {
  const client = (db as { $client?: unknown }).$client as postgres.Sql | undefined;
  return typeof client === 'function' && typeof client.unsafe === 'function' ? client : undefined;
}

/**
 * A statement of the busiest paths whose text is built once: building it with drizzle's `sql` costs more CPU
 * than the statement's round trip when a batch is small (a CPU profile at 1,000 reports/s put drizzle's query
 * building at ~5% of the server's time). `build` gets a placeholder for each named parameter; `run` sends the
 * text with the values in their places: on PostgreSQL a prepared statement (as `runPrepared`), on PGlite
 * through its client (what drizzle's PGlite session does). Its limits, where drizzle's own path differs:
 * values are strings, numbers, booleans or null only (no column encoders run, and an array would go as one
 * array parameter, not a list), so `run` refuses anything else; it runs on the database itself, never inside a
 * transaction (a transaction has no client of its own); rows come back as the driver gives them.
 */
export function fixedStatement<K extends string>(names: readonly K[], build: (p: Record<K, SQL>) => SQL) {
  const marks = names.map((name) => ({ name }));
  const query = dialect.sqlToQuery(build(Object.fromEntries(marks.map((m) => [m.name, sql`${m}`])) as Record<K, SQL>));
  const order = query.params.map((param) => {
    const mark = marks.find((m) => m === param);
    if (!mark) throw new Error(`fixedStatement: a parameter of the statement is not a placeholder: ${String(param)}`);
    return mark.name;
  });
  const text = query.sql;
  return {
    text,
    async run(db: Db, values: Record<K, unknown>): Promise<unknown> {
      const params = order.map((name) => {
        const value = values[name];
        if (value !== null && typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean')
          throw new TypeError(`fixedStatement: the value of ${name} is not a string, number, boolean or null`);
        return value;
      });
      const pg = postgresClient(db);
      if (pg) return pg.unsafe(text, params as postgres.ParameterOrJSON<never>[], { prepare: true });
      const client = (db as { $client?: { query?(text: string, params: unknown[]): Promise<unknown> } }).$client;
      if (typeof client?.query === 'function') return client.query(text, params);
      throw new Error('fixedStatement: no PostgreSQL or PGlite client');
    },
  };
}

/** Both drivers return rows, one as an array, the other under `rows`. */
export function rowsOf<T>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[];
  return ((result as { rows?: T[] }).rows ?? []) as T[];
}

/** `drizzle/` of the repository, from src/db (tsx) or dist/src/db (compiled). */
export const migrationsFolder =
  ['../../drizzle', '../../../drizzle']
    .map((rel) => fileURLToPath(new URL(rel, import.meta.url)))
    .find((dir) => existsSync(path.join(dir, 'meta', '_journal.json'))) ??
  fileURLToPath(new URL('../../drizzle', import.meta.url));

export interface PgliteOptions {
  /** Directory of the database files; omitted = in memory. */
  dataDir?: string;
  /** A dump (from `dumpDataDir`) to start from: tests start from a migrated snapshot. */
  loadDataDir?: Blob | File;
  /** A PGlite build to use instead of the default (e.g. one with TimescaleDB, in tests). */
  client?: PGlite;
}

export async function openPglite(opts: PgliteOptions = {}): Promise<Database & { client: PGlite }> {
  let client = opts.client;
  if (!client) {
    if (opts.dataDir) mkdirSync(opts.dataDir, { recursive: true });
    client = new PGlite({
      ...(opts.dataDir ? { dataDir: path.resolve(opts.dataDir, 'pg') } : {}),
      ...(opts.loadDataDir ? { loadDataDir: opts.loadDataDir } : {}),
    });
  }
  await client.query('select 1');
  const typed = drizzlePglite(client, { schema });
  const owned = client;
  return {
    db: typed as unknown as Db,
    client: owned,
    driver: 'pglite',
    migrate: () => migratePglite(typed, { migrationsFolder }),
    close: async () => {
      if (!owned.closed) await owned.close();
    },
  };
}

export interface PostgresOptions {
  max?: number;
  /** Where the absorbed error below is logged (the server's logger); unset = a pino logger on standard error. */
  logger?: Pick<Logger, 'warn'>;
}

/**
 * postgres.js 3.4 runs an array-types query on every new connection and drops its promise: when the
 * server kills that connection (restart, failover, pg_terminate_backend) the error escapes as an
 * unhandled rejection and would end the process (porsager/postgres#1192, #1223). The query the
 * application was running fails on its own (and is retried where that is safe), so this one error
 * is logged and absorbed; every other unhandled rejection still ends the process as before.
 */
export function isDroppedTypeFetch(reason: unknown): boolean {
  const query = (reason as { query?: unknown } | null)?.query;
  return typeof query === 'string' && query.includes('pg_catalog.pg_type') && query.includes("typcategory = 'A'");
}
let fallbackLogger: Logger | undefined;
/**
 * Logs the dropped type fetch as a warning with the error (its stack kept, its query and parameters not: the
 * server's serializers of src/logger.ts) and returns; any other reason is thrown on. Without a logger (the test
 * helpers open pools without one) a pino logger at 'warn' on standard error does it.
 */
export function absorbDroppedTypeFetch(reason: unknown, logger?: Pick<Logger, 'warn'>): void {
  if (!isDroppedTypeFetch(reason)) throw reason;
  const log = logger ?? (fallbackLogger ??= pino(loggerOptions('warn'), pino.destination(2)));
  log.warn({ err: reason }, 'database connection lost while it was starting; it is re-established on the next query');
}
let typeFetchGuard = false;
function guardTypeFetch(logger?: Pick<Logger, 'warn'>) {
  if (typeFetchGuard) return;
  typeFetchGuard = true;
  process.on('unhandledRejection', (reason) => absorbDroppedTypeFetch(reason, logger));
}

export async function openPostgres(url: string, opts: PostgresOptions = {}): Promise<Database> {
  guardTypeFetch(opts.logger);
  const max = opts.max ?? 10;
  // `iot-cloud` and a suffix of this pool's own: pg_stat_activity tells this pool's connections from those of
  // other nodes and processes on the same database (docs/metrics.md §3).
  const applicationName = `iot-cloud-${randomBytes(6).toString('hex')}`;
  const sql = postgres(url, {
    max,
    onnotice: () => {},
    connection: { application_name: applicationName },
  });
  // Fail fast with the driver's message when the server is not reachable.
  await sql`select 1`;
  const typed = drizzlePostgres(sql, { schema });
  return {
    db: typed as unknown as Db,
    driver: 'postgres',
    migrate: async () => {
      // Several nodes may start at once: one applies the migrations, the others wait on the lock.
      await sql`select pg_advisory_lock(727274)`;
      try {
        await migratePostgres(typed, { migrationsFolder });
      } finally {
        await sql`select pg_advisory_unlock(727274)`;
      }
    },
    close: () => sql.end({ timeout: 5 }),
    pool: {
      max,
      connections: async () => {
        const rows = await sql<{ state: string | null; n: number }[]>`
          select state, count(*)::int as n from pg_stat_activity where application_name = ${applicationName} group by state`;
        // `idle` waits for work; every other state (active, idle in transaction, …) holds the connection.
        let idle = 0;
        let active = 0;
        for (const r of rows)
          if (r.state === 'idle') idle += r.n;
          else active += r.n;
        return { active, idle };
      },
    },
  };
}
