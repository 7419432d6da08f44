import { eq, sql } from 'drizzle-orm';
import { doublePrecision, pgTable, text, timestamp } from 'drizzle-orm/pg-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowsOf } from '../../src/db/client.ts';
import { enableTimescale } from '../../src/db/timescale.ts';
import { openTimescalePglite, type TimescalePglite } from '../helpers/timescale-pglite.ts';

/**
 * The TimescaleDB build of PGlite used by the history-store tests: proves the SQL the app relies on
 * (hypertables, compression, retention, time_bucket) runs on it through the app's drizzle driver.
 */

let ts: TimescalePglite;

beforeAll(async () => {
  ts = await openTimescalePglite({ migrate: true });
});

afterAll(async () => {
  await ts?.close();
});

async function rows<T>(query: string, params?: unknown[]): Promise<T[]> {
  return (await ts.raw.query<T>(query, params)).rows;
}

/** A history-like hypertable, one chunk per day, with the unique index the app upserts on. */
async function createHistory(name: string) {
  await ts.raw.exec(`
    create table ${name} (project_id text not null, device_id text not null, identifier text not null,
      ts timestamptz not null, num double precision, bool boolean, str text, json jsonb);
    select create_hypertable('${name}', by_range('ts', interval '1 day'));
    create unique index ${name}_key on ${name} (project_id, device_id, identifier, ts);`);
}

/** Inserts hourly `temp` values for `days` days up to `end`, through bound array parameters. */
async function insertHourly(name: string, device: string, end: number, days: number) {
  const times: string[] = [];
  const values: number[] = [];
  for (let h = 0; h < days * 24; h++) {
    times.push(new Date(end - h * 3_600_000).toISOString());
    values.push(h);
  }
  const n = times.length;
  await ts.raw.query(
    `insert into ${name} (project_id, device_id, identifier, ts, num, json)
     select * from unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::float8[], $6::jsonb[])`,
    [
      Array(n).fill('p1'),
      Array(n).fill(device),
      Array(n).fill('temp'),
      times,
      values,
      values.map((v) => JSON.stringify({ v })),
    ],
  );
}

describe('TimescaleDB PGlite harness', () => {
  it('has the extension with the compression (TSL) features and runs the app migrations', async () => {
    const [ext] = await rows<{ extversion: string }>(
      `select extversion from pg_extension where extname = 'timescaledb'`,
    );
    expect(ext?.extversion).toMatch(/^2\.23\./);
    const [license] = await rows<{ license: string }>(`select current_setting('timescaledb.license') as license`);
    expect(license?.license).toBe('timescale');
    // The app's own detection sees it as installed.
    expect(await enableTimescale(ts.db, { warn: () => {} })).toBe(true);
    const [projects] = await rows<{ n: number }>(`select count(*)::int as n from projects`);
    expect(projects?.n).toBe(0);
  });

  it('serves drizzle execute, query builders and transactions on a hypertable', async () => {
    await createHistory('h_drizzle');
    const h = pgTable('h_drizzle', {
      projectId: text('project_id').notNull(),
      deviceId: text('device_id').notNull(),
      identifier: text('identifier').notNull(),
      ts: timestamp('ts', { withTimezone: true, mode: 'date' }).notNull(),
      num: doublePrecision('num'),
    });
    const at = new Date('2025-06-10T12:00:00.000Z');
    await ts.db.insert(h).values({ projectId: 'p1', deviceId: 'd1', identifier: 'temp', ts: at, num: 1.5 });
    await ts.db
      .insert(h)
      .values({ projectId: 'p1', deviceId: 'd1', identifier: 'temp', ts: at, num: 2.5 })
      .onConflictDoUpdate({ target: [h.projectId, h.deviceId, h.identifier, h.ts], set: { num: sql`excluded.num` } });
    const read = await ts.db.select().from(h).where(eq(h.deviceId, 'd1'));
    expect(read).toEqual([{ projectId: 'p1', deviceId: 'd1', identifier: 'temp', ts: at, num: 2.5 }]);

    await expect(
      ts.db.transaction(async (tx) => {
        await tx.insert(h).values({ projectId: 'p1', deviceId: 'd2', identifier: 'temp', ts: at, num: 1 });
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    const counted = rowsOf<{ n: number }>(await ts.db.execute(sql`select count(*)::int as n from h_drizzle`));
    expect(counted[0]?.n).toBe(1);
  });

  it('makes hypertables of empty tables, of filled ones only with migrate_data, and needs ts in unique indexes', async () => {
    await ts.raw.exec(`create table h_filled (ts timestamptz not null, v float8);
      insert into h_filled select g, 1 from generate_series(timestamptz '2025-01-01 00:00+00', timestamptz '2025-01-03 23:00+00', interval '1 hour') g;`);
    await expect(
      ts.raw.query(`select create_hypertable('h_filled', by_range('ts', interval '1 day'))`),
    ).rejects.toThrow('table "h_filled" is not empty');
    await ts.raw.query(`select create_hypertable('h_filled', by_range('ts', interval '1 day'), migrate_data => true)`);
    const [chunks] = await rows<{ n: number }>(`select count(*)::int as n from show_chunks('h_filled')`);
    expect(chunks?.n).toBe(3);

    // The pre-2.13 signature still works, and if_not_exists makes it idempotent.
    await ts.raw.exec(`create table h_old (ts timestamptz not null, v float8)`);
    await ts.raw.query(`select create_hypertable('h_old', 'ts', chunk_time_interval => interval '1 day')`);
    const [again] = await rows<{ r: string }>(
      `select create_hypertable('h_old', by_range('ts'), if_not_exists => true)::text as r`,
    );
    expect(again?.r).toMatch(/,f\)$/);
    await ts.raw.query(`select set_chunk_time_interval('h_old', interval '7 days')`);

    await ts.raw.exec(
      `create table h_keyed (id bigint generated always as identity primary key, ts timestamptz not null)`,
    );
    await expect(ts.raw.query(`select create_hypertable('h_keyed', by_range('ts'))`)).rejects.toThrow(
      'cannot create a unique index without the column "ts" (used in partitioning)',
    );
  });

  it('compresses old chunks, still reads them, and takes back-dated inserts, upserts and deletes into them', async () => {
    await createHistory('h_comp');
    const end = Date.parse('2025-06-20T23:00:00Z');
    await insertHourly('h_comp', 'd1', end, 10);
    await insertHourly('h_comp', 'd2', end, 10);
    const before = await rows<{ device_id: string; n: number; total: number }>(
      `select device_id, count(*)::int as n, sum(num)::float8 as total from h_comp group by 1 order by 1`,
    );

    await ts.raw
      .exec(`alter table h_comp set (timescaledb.compress, timescaledb.compress_segmentby = 'device_id, identifier',
      timescaledb.compress_orderby = 'ts desc')`);
    const compressed = await rows<{ c: string }>(
      `select compress_chunk(c, if_not_compressed => true)::text as c from show_chunks('h_comp', older_than => timestamptz '2025-06-16 00:00+00') c`,
    );
    expect(compressed).toHaveLength(5);
    const [stats] = await rows<{ number_compressed_chunks: number; total_chunks: number }>(
      `select number_compressed_chunks, total_chunks from hypertable_compression_stats('h_comp')`,
    );
    expect(stats).toEqual({ number_compressed_chunks: 5, total_chunks: 10 });

    const after = await rows<{ device_id: string; n: number; total: number }>(
      `select device_id, count(*)::int as n, sum(num)::float8 as total from h_comp group by 1 order by 1`,
    );
    expect(after).toEqual(before);

    const old = '2025-06-12T00:30:00Z';
    await ts.raw.query(
      `insert into h_comp (project_id, device_id, identifier, ts, num) values ('p1', 'd1', 'temp', $1, 42)`,
      [old],
    );
    await ts.raw.query(
      `insert into h_comp (project_id, device_id, identifier, ts, num) values ('p1', 'd1', 'temp', $1, 43)
       on conflict (project_id, device_id, identifier, ts) do update set num = excluded.num`,
      [old],
    );
    await expect(
      ts.raw.query(
        `insert into h_comp (project_id, device_id, identifier, ts, num) values ('p1', 'd1', 'temp', $1, 44)`,
        [old],
      ),
    ).rejects.toThrow('duplicate key value violates unique constraint');
    const [readBack] = await rows<{ num: number }>(`select num from h_comp where device_id = 'd1' and ts = $1`, [old]);
    expect(readBack?.num).toBe(43);

    const deleted = await ts.raw.query(
      `delete from h_comp where device_id = 'd2' and ts < timestamptz '2025-06-16 00:00+00'`,
    );
    expect(deleted.affectedRows).toBe(24 * 5);
    const [left] = await rows<{ n: number }>(`select count(*)::int as n from h_comp where device_id = 'd2'`);
    expect(left?.n).toBe(24 * 5);
  });

  it('runs compression and retention policies on demand with run_job', async () => {
    await createHistory('h_jobs');
    await insertHourly('h_jobs', 'd1', Date.now(), 20);
    await ts.raw
      .exec(`alter table h_jobs set (timescaledb.compress, timescaledb.compress_segmentby = 'device_id, identifier',
      timescaledb.compress_orderby = 'ts desc')`);
    const [compression] = await rows<{ id: number }>(
      `select add_compression_policy('h_jobs', interval '7 days', if_not_exists => true) as id`,
    );
    const [repeated] = await rows<{ id: number }>(
      `select add_compression_policy('h_jobs', interval '7 days', if_not_exists => true) as id`,
    );
    expect(repeated?.id).toBe(-1);
    const [retention] = await rows<{ id: number }>(
      `select add_retention_policy('h_jobs', interval '14 days', if_not_exists => true) as id`,
    );
    const jobs = await rows<{ proc_name: string }>(
      `select proc_name from timescaledb_information.jobs where hypertable_name = 'h_jobs' order by proc_name`,
    );
    expect(jobs.map((j) => j.proc_name)).toEqual(['policy_compression', 'policy_retention']);

    const chunkState = () =>
      rows<{ compressed: number; total: number; oldest: string }>(
        `select count(*) filter (where is_compressed)::int as compressed, count(*)::int as total, min(range_start)::text as oldest
         from timescaledb_information.chunks where hypertable_name = 'h_jobs'`,
      );
    const [initial] = await chunkState();
    expect(initial?.compressed).toBe(0);

    await ts.raw.query(`call run_job($1)`, [compression?.id]);
    const [afterCompression] = await chunkState();
    expect(afterCompression?.compressed).toBeGreaterThanOrEqual(12);
    expect(afterCompression?.total).toBe(initial?.total);

    await ts.raw.query(`call run_job($1)`, [retention?.id]);
    const [afterRetention] = await chunkState();
    expect(afterRetention!.total).toBeLessThan(initial!.total);
    const [oldest] = await rows<{ ok: boolean }>(`select min(ts) >= now() - interval '15 days' as ok from h_jobs`);
    expect(oldest?.ok).toBe(true);

    await ts.raw.query(`select remove_compression_policy('h_jobs', if_exists => true)`);
    await ts.raw.query(`select remove_retention_policy('h_jobs', if_exists => true)`);
    const [remaining] = await rows<{ n: number }>(
      `select count(*)::int as n from timescaledb_information.jobs where hypertable_name = 'h_jobs'`,
    );
    expect(remaining?.n).toBe(0);
  });

  it('drops whole chunks older than a bound with drop_chunks', async () => {
    await createHistory('h_drop');
    await insertHourly('h_drop', 'd1', Date.parse('2025-06-20T23:00:00Z'), 10);
    const dropped = await rows<{ c: string }>(
      `select drop_chunks('h_drop', older_than => timestamptz '2025-06-15 00:00+00')::text as c`,
    );
    expect(dropped).toHaveLength(4);
    const [left] = await rows<{ n: number; oldest: Date }>(`select count(*)::int as n, min(ts) as oldest from h_drop`);
    expect(left).toEqual({ n: 6 * 24, oldest: new Date(Date.parse('2025-06-15T00:00:00Z')) });
  });

  it('buckets with time_bucket exactly as date_bin from 2000-01-03 UTC, in any session time zone', async () => {
    for (const zone of ['UTC', 'Asia/Shanghai', 'America/New_York']) {
      await ts.raw.query(`select set_config('timezone', $1, false)`, [zone]);
      for (const width of ['1 minute', '15 minutes', '1 hour', '6 hours', '1 day', '7 days']) {
        const [r] = await rows<{ n: number; mismatches: number }>(
          `select count(*)::int as n,
             count(*) filter (where time_bucket($1::interval, t) <> date_bin($1::interval, t, timestamptz '2000-01-03 00:00+00'))::int as mismatches
           from generate_series(timestamptz '2024-02-25 00:00+00', timestamptz '2024-03-12 00:00+00', interval '37 minutes') t`,
          [width],
        );
        expect(r?.n).toBeGreaterThan(600);
        expect({ zone, width, mismatches: r?.mismatches }).toEqual({ zone, width, mismatches: 0 });
      }
    }
    // A bare '2000-01-01' origin is read in the session zone: it shifts day buckets off UTC midnight.
    const [shifted] = await rows<{ tb: Date; db: Date }>(
      `select time_bucket('1 day', timestamptz '2024-03-05 10:00+00') as tb, date_bin('1 day', timestamptz '2024-03-05 10:00+00', timestamptz '2000-01-01') as db`,
    );
    expect(shifted?.tb).toEqual(new Date('2024-03-05T00:00:00Z'));
    expect(shifted?.db).toEqual(new Date('2024-03-05T05:00:00Z'));
    await ts.raw.query(`reset timezone`);
  });
});
