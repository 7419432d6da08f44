import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowsOf, type Db } from '../../src/db/client.ts';
import { Duplicate, isTransientDbError } from '../../src/db/errors.ts';
import {
  createHistoryRepository,
  tsOf,
  type HistoryRepository,
  type TelemetryRow,
} from '../../src/db/repositories/history.repository.ts';
import { createProject, createTestApp, expectOk, type TestContext } from '../helpers/app.ts';
import { openPrivateTestDatabase } from '../helpers/db.ts';
import { openTimescalePglite } from '../helpers/timescale-pglite.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** The start (UTC midnight) of the day `daysAgo` days before today: dates stay within the default retention (365 days). */
const dayStart = (daysAgo: number) => Math.floor((Date.now() - daysAgo * DAY) / DAY) * DAY;
const partitionOf = (ts: number) => `attribute_history_d${new Date(ts).toISOString().slice(0, 10).replaceAll('-', '')}`;

/**
 * The same history store behaviour on each backend: the suite's database (embedded PGlite, or
 * PostgreSQL with TEST_DATABASE_URL: both range-partitioned by day) and TimescaleDB (PGlite built
 * with TimescaleDB 2.23: a hypertable with compression and retention policies). The suite's
 * database is one of this file's own: it drops whole days, database-wide.
 */
const backends = [
  {
    name: 'suite database (partitioned)',
    mode: 'partitioned' as const,
    open: async () => createTestApp({}, { database: await openPrivateTestDatabase() }),
  },
  {
    name: 'TimescaleDB (PGlite build)',
    mode: 'timescale' as const,
    open: async () => {
      const ts = await openTimescalePglite({ migrate: true });
      return createTestApp({}, { database: { db: ts.db, driver: 'pglite', migrate: ts.migrate, close: ts.close } });
    },
  },
];

describe.each(backends)('history store on $name', ({ mode, open }) => {
  let ctx: TestContext;
  let store: HistoryRepository;
  let db: Db;
  let projectId: string;
  let deviceId: string;

  const row = (ts: number, identifier: string, value: unknown): TelemetryRow => ({
    projectId,
    deviceId,
    identifier,
    ts,
    value,
    attrType: 'report',
    history: true,
    dataType:
      typeof value === 'number'
        ? 'number'
        : typeof value === 'boolean'
          ? 'boolean'
          : typeof value === 'string'
            ? 'string'
            : Array.isArray(value)
              ? 'array'
              : 'object',
  });
  const write = async (rows: TelemetryRow[]) => {
    await store.ensurePartitions(rows.map((r) => store.dayOf(r.ts)));
    await db.transaction((tx) => store.write(tx, rows));
  };

  beforeAll(async () => {
    ctx = await open();
    db = ctx.database.db;
    store = ctx.services.historyStore;
    const p = await createProject(ctx);
    projectId = p.project.id;
    deviceId = expectOk(await p.api.post('/api/v1/device', { name: 'd' })).id;
  }, 60_000);
  afterAll(() => ctx?.close());

  it(`detects the ${mode} layout`, async () => {
    expect(await createHistoryRepository(db).detect()).toBe(mode);
  });

  it('writes typed values and reads them back newest first, paged and ranged', async () => {
    const t0 = dayStart(30) + 12 * HOUR;
    await write([
      row(t0, 'n', 1.25),
      row(t0, 'b', true),
      row(t0, 's', 'x'),
      row(t0, 'o', { a: [1] }),
      row(t0 + 1000, 'n', -3),
      row(t0 + DAY, 'n', 7),
    ]);
    expect(await store.series(projectId, deviceId, 'n', t0, t0 + 2 * DAY, 10, 0)).toEqual([
      { ts: t0 + DAY, value: 7, dataType: 'number' },
      { ts: t0 + 1000, value: -3, dataType: 'number' },
      { ts: t0, value: 1.25, dataType: 'number' },
    ]);
    expect(await store.series(projectId, deviceId, 'n', t0, t0 + 2 * DAY, 1, 1)).toEqual([
      { ts: t0 + 1000, value: -3, dataType: 'number' },
    ]);
    expect(await store.series(projectId, deviceId, 'n', t0 + 1, t0 + DAY - 1, 10, 0)).toEqual([
      { ts: t0 + 1000, value: -3, dataType: 'number' },
    ]);
    expect((await store.series(projectId, deviceId, 'b', t0, t0, 10, 0))[0]).toMatchObject({
      value: true,
      dataType: 'boolean',
    });
    expect((await store.series(projectId, deviceId, 'o', t0, t0, 10, 0))[0]).toMatchObject({
      value: { a: [1] },
      dataType: 'object',
    });
    // Another project sees nothing of it.
    expect(await store.series('another-project', deviceId, 'n', t0, t0 + 2 * DAY, 10, 0)).toEqual([]);
  });

  it('aggregates into date_bin buckets aligned to the epoch', async () => {
    const day = dayStart(20);
    await write([row(day + 1000, 'agg', 2), row(day + 2000, 'agg', 4), row(day + HOUR + 5, 'agg', 10)]);
    expect(await store.aggregate(projectId, deviceId, ['agg'], 'avg', day, day + DAY, HOUR)).toEqual([
      { identifier: 'agg', ts: day, value: 3 },
      { identifier: 'agg', ts: day + HOUR, value: 10 },
    ]);
    if (mode === 'timescale') {
      // TimescaleDB's own bucketing gives the same buckets for the same width.
      const viaTimeBucket = rowsOf<{ b: string | number; v: number }>(
        await db.execute(sql`select (extract(epoch from time_bucket('1 hour', ts)) * 1000)::int8 as b, avg(num) as v from attribute_history
          where device_id = ${deviceId} and identifier = 'agg' group by 1 order by 1`),
      ).map((r) => ({ ts: Number(r.b), v: Number(r.v) }));
      expect(viaTimeBucket).toEqual([
        { ts: day, v: 3 },
        { ts: day + HOUR, v: 10 },
      ]);
    }
  });

  it.runIf(mode === 'partitioned')(
    'plans only the day partitions a time range needs (bounds folded while planning)',
    async () => {
      const day = dayStart(15);
      await write([0, 1, 2, 3, 4].map((d) => row(day + d * DAY + 1000, 'pruned', d)));
      const plan = rowsOf<{ 'QUERY PLAN': string }>(
        await db.execute(sql`explain select avg(num) from attribute_history
        where device_id = ${deviceId} and identifier = 'pruned' and ts >= ${tsOf(day + 2 * DAY)} and ts < ${tsOf(day + 3 * DAY)}`),
      )
        .map((r) => r['QUERY PLAN'])
        .join('\n');
      expect([...new Set(plan.match(/attribute_history_d\d{8}/g))]).toEqual([partitionOf(day + 2 * DAY)]);
      expect(plan).not.toMatch(/Subplans Removed/);
      expect(await store.aggregate(projectId, deviceId, ['pruned'], 'sum', day + 2 * DAY, day + 3 * DAY, DAY)).toEqual([
        { identifier: 'pruned', ts: day + 2 * DAY, value: 2 },
      ]);
    },
  );

  it('drops whole days older than the retention', async () => {
    // Within the server's default retention (365 days): a server sharing this database must not drop it.
    const old = Math.floor((Date.now() - 200 * DAY) / DAY) * DAY + 8 * HOUR;
    await write([row(old, 'ret', 1), row(old + 2 * DAY, 'ret', 2)]);
    const dropped = await store.dropBefore(old + DAY + HOUR);
    expect(dropped).toBeGreaterThanOrEqual(1);
    expect(
      (await store.series(projectId, deviceId, 'ret', old - DAY, old + 3 * DAY, 10, 0)).map((p) => p.value),
    ).toEqual([2]);
    // Writing into a dropped day again recreates its partition (or chunk).
    await write([row(old, 'ret', 3)]);
    expect(
      (await store.series(projectId, deviceId, 'ret', old - DAY, old + 3 * DAY, 10, 0)).map((p) => p.value),
    ).toEqual([2, 3]);
  });

  if (mode === 'timescale') {
    it('applies chunk interval, compression and retention policies, and reads, inserts and deletes in compressed chunks', async () => {
      await store.applyTimescalePolicies({ chunkHours: 24, compressAfterDays: 7, retentionDays: 365 });
      const jobs = rowsOf<{ proc_name: string; job_id: number }>(
        await db.execute(
          sql`select proc_name, job_id from timescaledb_information.jobs where hypertable_name = 'attribute_history' order by proc_name`,
        ),
      );
      expect(jobs.map((j) => j.proc_name)).toEqual(['policy_compression', 'policy_retention']);
      // Applying again (every start) replaces rather than duplicates.
      await store.applyTimescalePolicies({ chunkHours: 12, compressAfterDays: 3, retentionDays: 0 });
      const again = rowsOf<{ proc_name: string; job_id: number }>(
        await db.execute(
          sql`select proc_name, job_id from timescaledb_information.jobs where hypertable_name = 'attribute_history'`,
        ),
      );
      expect(again.map((j) => j.proc_name)).toEqual(['policy_compression']);

      // Older than the compression policy's 3 days.
      const t = dayStart(10) + 6 * HOUR;
      await write([row(t, 'cmp', 1), row(t + 1000, 'cmp', 2)]);
      // No background workers in PGlite: the policy runs when called.
      await db.execute(sql.raw(`call run_job(${again[0]!.job_id})`));
      const compressed = rowsOf<{ n: string | number }>(
        await db.execute(
          sql`select count(*) as n from timescaledb_information.chunks where hypertable_name = 'attribute_history' and is_compressed`,
        ),
      );
      expect(Number(compressed[0]!.n)).toBeGreaterThan(0);
      expect((await store.series(projectId, deviceId, 'cmp', t, t + HOUR, 10, 0)).map((p) => p.value)).toEqual([2, 1]);
      await write([row(t + 500, 'cmp', 1.5)]);
      expect((await store.series(projectId, deviceId, 'cmp', t, t + HOUR, 10, 0)).map((p) => p.value)).toEqual([
        2, 1.5, 1,
      ]);
      await store.remove(projectId, deviceId, ['cmp']);
      expect(await store.series(projectId, deviceId, 'cmp', t, t + HOUR, 10, 0)).toEqual([]);
    });
  }

  if (mode === 'timescale') {
    it('deletes a deleted project’s history from compressed chunks, and only its own', async () => {
      const doomed = await createProject(ctx, 'compressed history to delete');
      const other = expectOk(await doomed.api.post('/api/v1/device', { name: 'd' })).id;
      await store.applyTimescalePolicies({ chunkHours: 12, compressAfterDays: 3, retentionDays: 0 });
      const t = dayStart(20) + 2 * HOUR;
      await write(Array.from({ length: 40 }, (_, i) => row(t + i * 1000, 'kept compressed', i)));
      await write([{ ...row(t, 'gone', 1), projectId: doomed.project.id, deviceId: other }]);
      const [job] = rowsOf<{ job_id: number }>(
        await db.execute(
          sql`select job_id from timescaledb_information.jobs where hypertable_name = 'attribute_history' and proc_name = 'policy_compression'`,
        ),
      );
      await db.execute(sql.raw(`call run_job(${job!.job_id})`));
      const [chunk] = rowsOf<{ compressed: boolean }>(
        await db.execute(
          sql`select bool_and(is_compressed) as compressed from timescaledb_information.chunks
              where hypertable_name = 'attribute_history' and range_start <= to_timestamp(${t / 1000}) and range_end > to_timestamp(${t / 1000})`,
        ),
      );
      expect(chunk?.compressed).toBe(true);
      await ctx.services.projects.delete(doomed.project.id);
      expect(await store.series(doomed.project.id, other, 'gone', t - HOUR, t + HOUR, 10, 0)).toEqual([]);
      expect(await store.series(projectId, deviceId, 'kept compressed', t - HOUR, t + HOUR, 100, 0)).toHaveLength(40);
    });
  }

  it('keeps the newest current value whatever order the batch holds', async () => {
    const t = Date.now();
    await write([row(t, 'cur', 2), { ...row(t - 5000, 'cur', 1) }]);
    await write([row(t - 10_000, 'cur', 0)]);
    expect(await ctx.services.currentValues.get(projectId, deviceId, ['cur'])).toEqual({ cur: 2 });
  });

  it('writes every current value of a flush larger than one statement holds', async () => {
    const t = Date.now();
    // 600 values: three statements of the flush (history.repository.ts CURRENT_CHUNK).
    const rows = Array.from({ length: 600 }, (_, i) => ({
      ...row(t, `many${String(i).padStart(3, '0')}`, i),
      history: false,
    }));
    await db.transaction((tx) => store.upsertCurrent(tx, rows));
    const stored = await ctx.services.currentValues.get(
      projectId,
      deviceId,
      rows.map((r) => r.identifier),
    );
    expect(Object.keys(stored)).toHaveLength(600);
    expect(stored.many000).toBe(0);
    expect(stored.many599).toBe(599);
  });

  it('names a batch written twice (its commit record taken) Duplicate ingest_commit, alone or with current values', async () => {
    const t0 = dayStart(4) + 9 * HOUR;
    const rows = [row(t0, 'twice', 1)];
    await store.ensurePartitions([store.dayOf(t0)]);
    await store.writeBatch(rows, [], 'batch-twice-alone', Date.now());
    const alone = await store.writeBatch(rows, [], 'batch-twice-alone', Date.now()).catch((e: unknown) => e);
    expect(alone).toBeInstanceOf(Duplicate);
    expect((alone as Duplicate).what).toBe('ingest_commit');
    await store.writeBatch(rows, rows, 'batch-twice-tx', Date.now());
    const inTx = await store.writeBatch(rows, rows, 'batch-twice-tx', Date.now()).catch((e: unknown) => e);
    expect(inTx).toBeInstanceOf(Duplicate);
    expect((inTx as Duplicate).what).toBe('ingest_commit');
  });

  it.runIf(mode === 'partitioned')(
    'turns a partition dropped elsewhere into a retryable error, and the retry creates it again',
    async () => {
      const t0 = dayStart(6) + 9 * HOUR;
      const rows = [row(t0, 'gone', 1)];
      await store.ensurePartitions([store.dayOf(t0)]);
      await db.execute(sql.raw(`drop table ${partitionOf(t0)}`));
      const err = await store.writeBatch(rows, [], 'batch-partition-1', Date.now()).catch((e: unknown) => e);
      expect(isTransientDbError(err)).toBe(true);
      await store.ensurePartitions([store.dayOf(t0)]);
      await store.writeBatch(rows, [], 'batch-partition-2', Date.now());
      expect(await store.series(projectId, deviceId, 'gone', t0, t0, 10, 0)).toEqual([
        { ts: t0, value: 1, dataType: 'number' },
      ]);
    },
  );
});
