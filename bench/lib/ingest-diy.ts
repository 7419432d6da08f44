import path from 'node:path';
import type postgres from 'postgres';
import { cpuProfFlags, freePort, spawnEntry, waitForPort, type Child } from './mqtt-proc.ts';

/**
 * The table of the do-it-yourself reference (mqtt-diy-broker.ts): the columns of our attribute history
 * (docs/scaling.md §4) without the project and the JSON column, a plain table (not partitioned) with the same
 * series index a reader of device series needs.
 */
export const DIY_TABLE = 'bench_diy_history';

/** Creates the reference's table afresh (a run starts from an empty table, as our history of a new project). */
export async function createDiyTable(pg: postgres.Sql): Promise<void> {
  await pg`drop table if exists ${pg(DIY_TABLE)}`;
  await pg`create table ${pg(DIY_TABLE)} (device_id text not null, identifier text not null,
    ts timestamptz not null, num double precision, bool boolean, str text)`;
  await pg`create index ${pg(`${DIY_TABLE}_series_idx`)} on ${pg(DIY_TABLE)} (device_id, identifier, ts desc)`;
}

export async function dropDiyTable(pg: postgres.Sql): Promise<void> {
  await pg`drop table if exists ${pg(DIY_TABLE)}`;
}

/** Rows of the reference's table, all or with `ts` in [from, to) (ms since the epoch). */
export async function countDiyRows(pg: postgres.Sql, from?: number, to?: number): Promise<number> {
  const [row] =
    from === undefined || to === undefined
      ? await pg<{ n: string }[]>`select count(*) as n from ${pg(DIY_TABLE)}`
      : await pg<{ n: string }[]>`select count(*) as n from ${pg(DIY_TABLE)}
          where ts >= timestamptz 'epoch' + ${from}::int8 * interval '1 millisecond'
            and ts < timestamptz 'epoch' + ${to}::int8 * interval '1 millisecond'`;
  return Number(row!.n);
}

/** The reference broker in a child process on a free port, writing to `databaseUrl`, its log in `logDir`. */
export async function startDiy(
  name: string,
  logDir: string,
  databaseUrl: string,
  /** A directory for its CPU profile. */
  cpuProf?: string,
): Promise<{ child: Child; port: number }> {
  const port = await freePort();
  const child = spawnEntry(
    name,
    'bench/lib/mqtt-diy-broker.ts',
    { BARE_MQTT_PORT: String(port), DATABASE_URL: databaseUrl, DIY_TABLE },
    path.join(logDir, `${name.replace(/\W+/g, '-')}.log`),
    cpuProfFlags(cpuProf),
  );
  await waitForPort(port, child, 60_000);
  return { child, port };
}

/** The batch counts the reference printed when it stopped (`{"diy":{…}}` in its log), if it did. */
export function diyCounts(
  log: string,
): { batches: number; reports: number; rows: number; maxReports: number } | undefined {
  const line = log.split('\n').find((l) => l.startsWith('{"diy":'));
  return line ? (JSON.parse(line) as { diy: ReturnType<typeof diyCounts> & object }).diy : undefined;
}
