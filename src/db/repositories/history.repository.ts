import { randomUUID } from 'node:crypto';
import { sql, type SQL } from 'drizzle-orm';
import { DAY_MS } from '../../lib/time.ts';
import { fixedStatement, rowsOf, type Db, type Tx } from '../client.ts';
import { PartitionMissing, translated } from '../errors.ts';
import { telemetryCheckpoints } from '../schema/index.ts';
import { timescaleLicense } from '../timescale.ts';
import type { AttrDataType, AttrType } from './attribute-values.repository.ts';

/**
 * How `attribute_history` is stored (migration 0002): a TimescaleDB hypertable, or a table
 * range-partitioned by UTC day whose partitions this repository creates and drops.
 */
export type HistoryMode = 'timescale' | 'partitioned';

/**
 * What a batch records beside its rows (device-protocol.md §3.3): the receipt keys of its QoS 1 reports
 * (decimal 64-bit integers), and the earlier batches whose receipts can go (their acknowledgements are out).
 */
export interface BatchMarks {
  /** 16 hex digits each. */
  receipts: readonly string[];
  release: readonly string[];
}
const NO_MARKS: BatchMarks = { receipts: [], release: [] };

/** One value at one time: a row of the history, and the current value it may become. */
export interface TelemetryRow {
  projectId: string;
  deviceId: string;
  identifier: string;
  ts: number;
  value: unknown;
  dataType: AttrDataType;
  attrType: AttrType;
  /** Only reports are history; pushes and cloud attributes change the current value only. */
  history: boolean;
}

export interface HistoryPoint {
  ts: number;
  value: unknown;
  dataType: AttrDataType;
}

export const AGGREGATES = ['avg', 'min', 'max', 'sum', 'count', 'first', 'last'] as const;
export type Aggregate = (typeof AGGREGATES)[number];

export interface Bucket {
  identifier: string;
  ts: number;
  value: number | null;
}

const PARTITION_PREFIX = 'attribute_history_d';
/** Devices whose history one statement of removeDevices deletes. */
const HISTORY_DELETE_DEVICES = 500;
/** Current values per statement of a flush (upsertCurrent). */
const CURRENT_CHUNK = 250;
/** Partition names carry their UTC day: attribute_history_d20261123. */
const partitionName = (day: number) =>
  PARTITION_PREFIX + new Date(day * DAY_MS).toISOString().slice(0, 10).replaceAll('-', '');
const dayOfName = (name: string) => {
  const m = /^attribute_history_d(\d{4})(\d{2})(\d{2})$/.exec(name);
  return m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) / DAY_MS : undefined;
};
/**
 * A time bound in ms as a timestamptz. `to_timestamp(float8)` is immutable, so the planner folds it
 * into a constant and prunes the day partitions / chunks outside the range while planning (the stable
 * `'epoch' + interval` pruned only at execution start, after planning every partition: ~2 ms per call
 * with 31 days). Exact to the millisecond (checked for every ms of a week and 2 M random times up to 2100).
 */
export const tsOf = (ms: number) => sql`to_timestamp(${ms}::float8 / 1000)`;
const msOf = (column: SQL) => sql`(extract(epoch from ${column}) * 1000)::int8`;

interface StoredPoint {
  ts: string | number;
  num: number | null;
  bool: boolean | null;
  str: string | null;
  json: unknown;
}
function pointOf(r: StoredPoint): HistoryPoint {
  const ts = Number(r.ts);
  if (r.num !== null) return { ts, value: Number(r.num), dataType: 'number' };
  if (r.bool !== null) return { ts, value: r.bool, dataType: 'boolean' };
  if (r.str !== null) return { ts, value: r.str, dataType: 'string' };
  return { ts, value: r.json, dataType: Array.isArray(r.json) ? 'array' : 'object' };
}

const aggregateSql: Record<Aggregate, SQL> = {
  avg: sql`avg(num)`,
  min: sql`min(num)`,
  max: sql`max(num)`,
  sum: sql`sum(num)`,
  count: sql`count(*)`,
  // first/last of the bucket by time; nulls (non-numbers) are skipped like the other aggregates.
  first: sql`(array_agg(num order by ts) filter (where num is not null))[1]`,
  last: sql`(array_agg(num order by ts desc) filter (where num is not null))[1]`,
};

/**
 * The INSERT of the history rows (reports) of `rows`, none when there are none. Rows of one report
 * (same device and time, adjacent) travel as one object of values, so ids and times are sent once
 * per report, not once per value; the value's JSON type picks its column. One parameter, one
 * statement text whatever the batch size.
 */
/** A receipt (16 hex digits, publish.ts receiptOf) as the int8 the database keeps. */
const keyOf = (hex: SQL) => sql`('x' || ${hex})::bit(64)::int8`;

/** The parameters of a batch's receipts: the batch, its time, the released batches and its keys, comma-separated. */
interface ReceiptParams {
  batchId: SQL;
  now: SQL;
  release: SQL;
  keys: SQL;
}
const receiptParams = (batchId: string, now: number, marks: BatchMarks): ReceiptParams => ({
  batchId: sql`${batchId}`,
  now: sql`${now}`,
  release: sql`${marks.release.join(',')}`,
  keys: sql`${marks.receipts.join(',')}`,
});

/**
 * The CTEs that record a batch's receipts and forget released ones (device-protocol.md §3.3): the lists go as
 * comma-separated text, so the statement's text is the same whatever their lengths.
 */
function receiptsCtes(p: ReceiptParams): SQL {
  return sql`released as (
      delete from report_receipts where batch_id = any(string_to_array(${p.release}, ','))
    ),
    receipts as (
      insert into report_receipts (batch_id, create_time, keys)
      select ${p.batchId}, ${p.now}::int8, array(select ${keyOf(sql`k`)} from unnest(string_to_array(${p.keys}, ',')) k)
      where ${p.keys} <> ''
    )`;
}

/** The same as a statement of its own. */
const receiptsQuery = (batchId: string, now: number, marks: BatchMarks): SQL =>
  sql`with ${receiptsCtes(receiptParams(batchId, now, marks))} select 1`;

/**
 * The history rows (reports) of `rows` as one JSON text, none when there are none. Rows of one report
 * (same device and time, adjacent) travel as one object of values, so ids and times are sent once
 * per report, not once per value; the value's JSON type picks its column. One parameter, one
 * statement text whatever the batch size.
 */
function reportsJson(rows: TelemetryRow[]): string | undefined {
  const reports: Array<{ p: string; d: string; t: number; v: Record<string, unknown> }> = [];
  let last: (typeof reports)[number] | undefined;
  for (const r of rows) {
    if (!r.history) continue;
    if (
      !last ||
      last.d !== r.deviceId ||
      last.t !== r.ts ||
      last.p !== r.projectId ||
      Object.hasOwn(last.v, r.identifier)
    ) {
      last = { p: r.projectId, d: r.deviceId, t: r.ts, v: {} };
      reports.push(last);
    }
    last.v[r.identifier] = r.value;
  }
  return reports.length ? JSON.stringify(reports) : undefined;
}

/** The INSERT of the reports of `reportsJson`. */
function insertSql(reports: SQL): SQL {
  return sql`
    insert into attribute_history (project_id, device_id, identifier, ts, num, bool, str, json)
    select r.p, r.d, e.key, timestamptz 'epoch' + r.t * interval '1 millisecond',
      case when jsonb_typeof(e.value) = 'number' then e.value::float8 end,
      case when jsonb_typeof(e.value) = 'boolean' then e.value::bool end,
      case when jsonb_typeof(e.value) = 'string' then e.value #>> '{}' end,
      case when jsonb_typeof(e.value) in ('object', 'array') then e.value end
    from jsonb_to_recordset(${reports}::jsonb) as r(p text, d text, t int8, v jsonb)
    cross join lateral jsonb_each(r.v) as e`;
}

/**
 * A batch of reports with its commit record and receipts as one statement (the hot path of the ingest): built
 * once, prepared on PostgreSQL.
 */
const batchStatement = fixedStatement(
  ['batchId', 'now', 'release', 'keys', 'reports'],
  (p) =>
    sql`with commit as (insert into ingest_commits (id, create_time) values (${p.batchId}, ${p.now}::int8)),
    ${receiptsCtes(p)}
    ${insertSql(p.reports)}`,
);

/** What the start applied: policies only with the community edition of TimescaleDB. */
export type TimescalePolicies = { mode: 'partitioned' } | { mode: 'timescale'; license: string; policies: boolean };

/** Moves a checkpoint forward to `ts` (never back). */
const advanceCheckpoint = async (tx: Tx, name: string, ts: number): Promise<void> => {
  await tx
    .insert(telemetryCheckpoints)
    .values({ name, ts })
    .onConflictDoUpdate({
      target: telemetryCheckpoints.name,
      set: { ts: sql`greatest(${telemetryCheckpoints.ts}, excluded.ts)` },
    });
};

export function createHistoryRepository(db: Db) {
  let mode: HistoryMode | undefined;
  /** Days whose partition is known to exist (partitioned mode). */
  const partitions = new Set<number>();

  async function detect(): Promise<HistoryMode> {
    if (mode) return mode;
    const rows = rowsOf<{ hyper: boolean }>(
      await db.execute(sql`
        select exists (
          select 1 from pg_extension e where e.extname = 'timescaledb'
        ) and exists (
          select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where c.relname = 'attribute_history' and c.relkind = 'r'
        ) as hyper`),
    );
    mode = rows[0]?.hyper ? 'timescale' : 'partitioned';
    return mode;
  }

  /** Creates the day partitions `days` needs (idempotent, serialized across nodes by an advisory lock). */
  async function ensurePartitions(days: Iterable<number>): Promise<void> {
    const missing = [...new Set(days)].filter((d) => !partitions.has(d));
    if (!missing.length || (await detect()) !== 'partitioned') return;
    await db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(hashtext('attribute_history_partitions'))`);
      for (const day of missing) {
        const from = new Date(day * DAY_MS).toISOString();
        const to = new Date((day + 1) * DAY_MS).toISOString();
        await tx.execute(
          sql.raw(
            `create table if not exists ${partitionName(day)} partition of attribute_history for values from ('${from}') to ('${to}')`,
          ),
        );
      }
    });
    for (const day of missing) partitions.add(day);
  }

  return {
    detect,
    ensurePartitions,
    /** Forgets which partitions exist (another process dropped one): the next write checks again. */
    forgetPartitions: () => partitions.clear(),
    dayOf: (ts: number) => Math.floor(ts / DAY_MS),

    /**
     * Inserts history rows (reports) in one statement, in the caller's transaction, recording the
     * batch as committed with them (`committed`).
     */
    async insert(tx: Tx, rows: TelemetryRow[], batchId: string, now: number, marks = NO_MARKS): Promise<void> {
      await tx.execute(sql`insert into ingest_commits (id, create_time) values (${batchId}, ${now})`);
      if (marks.receipts.length || marks.release.length) await tx.execute(receiptsQuery(batchId, now, marks));
      const reports = reportsJson(rows);
      if (reports) await tx.execute(insertSql(sql`${reports}`));
    },

    /**
     * The same as one statement of its own (its own transaction, durable when it answers): the hot
     * path of the ingest, one round trip per batch on PostgreSQL (a prepared statement, no BEGIN/COMMIT).
     * The batch's commit record is written by the same statement.
     */
    async insertAlone(rows: TelemetryRow[], batchId: string, now: number, marks = NO_MARKS): Promise<void> {
      const reports = reportsJson(rows);
      if (!reports) {
        if (marks.receipts.length || marks.release.length) await db.execute(receiptsQuery(batchId, now, marks));
        return;
      }
      // One text whatever the marks (empty lists change nothing): one prepared statement.
      await batchStatement.run(db, {
        batchId,
        now,
        release: marks.release.join(','),
        keys: marks.receipts.join(','),
        reports,
      });
    },

    /**
     * Whether a report with the receipt `key` was stored since `since` by a batch whose acknowledgements may not
     * have reached their devices (device-protocol.md §3.3); a receipt found is used up (a take recorded), so it
     * matches one resend at most. One statement: two look-ups of the same key at once find it once.
     */
    async takeReceipt(key: string, since: number, now: number): Promise<boolean> {
      // Taken when no take of it is newer than the window (a stale take is replaced).
      return (
        rowsOf(
          await db.execute(sql`
            with found as (
              select 1 from report_receipts where create_time >= ${since}::int8 and ${keyOf(sql`${key}`)} = any(keys) limit 1
            )
            insert into report_receipt_takes (key, create_time) select ${keyOf(sql`${key}`)}, ${now}::int8 from found
            on conflict (key) do update set create_time = excluded.create_time
              where report_receipt_takes.create_time < ${since}::int8
            returning key`),
        ).length > 0
      );
    },

    /** Forgets the receipts of the batches `batchIds` (their acknowledgements are out). */
    async releaseReceipts(batchIds: readonly string[]): Promise<void> {
      if (batchIds.length)
        await db.execute(
          sql`delete from report_receipts where batch_id = any(string_to_array(${batchIds.join(',')}, ','))`,
        );
    },

    /** Forgets receipts older than `before` (ms): past the look-up window they are never matched. */
    async pruneReceipts(before: number): Promise<void> {
      await db.execute(sql`delete from report_receipts where create_time < ${before}::int8`);
      await db.execute(sql`delete from report_receipt_takes where create_time < ${before}::int8`);
    },

    /** Whether the batch `batchId` committed (its answer may have been lost with its connection). */
    async committed(batchId: string): Promise<boolean> {
      return rowsOf(await db.execute(sql`select 1 from ingest_commits where id = ${batchId}`)).length > 0;
    },

    /** Forgets the commit records older than `before` (ms): a lost answer is retried within seconds. */
    async pruneCommits(before: number): Promise<void> {
      await db.execute(sql`delete from ingest_commits where create_time < ${before}`);
    },

    /**
     * Makes the newest value per (device, identifier) of `rows` the current value, in statements of at most
     * `CURRENT_CHUNK` values. A value older than the stored one does not replace it; values of deleted devices
     * are skipped.
     */
    async upsertCurrent(tx: Tx, rows: Iterable<TelemetryRow>): Promise<void> {
      const latest = new Map<string, TelemetryRow>();
      for (const r of rows) {
        const key = `${r.deviceId}\u0000${r.identifier}`;
        const seen = latest.get(key);
        if (!seen || seen.ts <= r.ts) latest.set(key, r);
      }
      const current = [...latest.values()].map((r) => ({
        p: r.projectId,
        d: r.deviceId,
        i: r.identifier,
        v: r.value,
        a: r.attrType,
        y: r.dataType,
        t: r.ts,
      }));
      if (!current.length) return;
      // Sorted so concurrent writers lock rows in one order (no deadlocks between them).
      current.sort((a, b) => (a.d < b.d ? -1 : a.d > b.d ? 1 : a.i < b.i ? -1 : a.i > b.i ? 1 : 0));
      // One chunk at a time, the event loop free while each statement runs: the once-a-second flush of a node's
      // values never holds it for long (one statement of 2,000 values held it 13-16 ms, and every report arriving
      // meanwhile waited: the p99 of bench:mqtt-connect at 1,000 reports/s). The price is a round trip per 250
      // values (~100 a second at 25,000 values/s per node).
      for (let i = 0; i < current.length; i += CURRENT_CHUNK)
        await tx.execute(sql`
        insert into attribute_values (device_id, identifier, project_id, value, attr_type, data_type, ts)
        select d, i, p, v, a, y, t
        from jsonb_to_recordset(${JSON.stringify(current.slice(i, i + CURRENT_CHUNK))}::jsonb) as r(p text, d text, i text, v jsonb, a text, y text, t int8)
        where exists (select 1 from devices where devices.id = r.d)
        on conflict (device_id, identifier) do update
          set value = excluded.value, attr_type = excluded.attr_type, data_type = excluded.data_type, ts = excluded.ts
          where attribute_values.ts <= excluded.ts`);
    },

    /**
     * One ingest batch: its history rows (`rows`' reports) with its commit record, and the current
     * values that cannot wait (`currentNow`: pushes, cloud, back-dated reports) in the same transaction.
     * Only history (the steady state): the INSERT alone, one round trip on PostgreSQL. A batch already
     * committed raises Duplicate('ingest_commit'); a partition dropped elsewhere meanwhile (retention on
     * another node) raises PartitionMissing after the known partitions are forgotten, so the ingest's
     * retry creates it again.
     */
    async writeBatch(
      rows: TelemetryRow[],
      currentNow: TelemetryRow[],
      batchId: string,
      now: number,
      marks = NO_MARKS,
    ): Promise<void> {
      try {
        if (!currentNow.length) {
          await this.insertAlone(rows, batchId, now, marks);
        } else {
          await db.transaction(async (tx) => {
            await this.insert(tx, rows, batchId, now, marks);
            await this.upsertCurrent(tx, currentNow);
          });
        }
      } catch (err) {
        const named = translated(err, { unique: { ingest_commits: 'ingest_commit' } });
        // The ingest retries PartitionMissing (errors.ts `isTransientDbError`); the retry creates it again.
        if (named instanceof PartitionMissing) partitions.clear();
        throw named;
      }
    },

    /** Current values and the checkpoint they reach, in one transaction (the current-values cache's flush). */
    async flushCurrent(rows: TelemetryRow[], checkpoint: string, ts: number): Promise<void> {
      await db.transaction(async (tx) => {
        await this.upsertCurrent(tx, rows);
        await advanceCheckpoint(tx, checkpoint, ts);
      });
    },

    /** The time (ms) the checkpoint `name` reached, or undefined when it was never written. */
    async checkpoint(name: string): Promise<number | undefined> {
      const rows = rowsOf<{ ts: string | number }>(
        await db.execute(sql`select ts from telemetry_checkpoints where name = ${name}`),
      );
      return rows.length ? Number(rows[0]!.ts) : undefined;
    },

    /** Moves the checkpoint `name` forward to `ts` (never back). */
    advanceCheckpoint: (name: string, ts: number) => advanceCheckpoint(db, name, ts),

    /**
     * History of the projects on the server's default retention (no project setting) older than
     * `before` (ms), by DELETE: used when some other project keeps longer, so whole days cannot go.
     */
    async deleteDefaultProjectsBefore(before: number): Promise<void> {
      await db.execute(sql`
        delete from attribute_history h using projects p
        where p.id = h.project_id and p.history_retention_days is null and h.ts < timestamptz 'epoch' + ${before}::int8 * interval '1 millisecond'`);
    },

    /** Both of the above: history rows and current values of one batch, in the caller's transaction. */
    async write(tx: Tx, rows: TelemetryRow[], batchId: string = randomUUID(), now = Date.now()): Promise<void> {
      await this.insert(tx, rows, batchId, now);
      await this.upsertCurrent(tx, rows);
    },

    /**
     * Current values from history reports newer than `since` (crash recovery of the current-values
     * cache): the newest per (device, identifier), never replacing a newer stored value.
     */
    async rebuildCurrentSince(since: number): Promise<number> {
      const rows = rowsOf<{ n: string | number }>(
        await db.execute(sql`
          with latest as (
            select distinct on (device_id, identifier) project_id, device_id, identifier, ts, num, bool, str, json
            from attribute_history where ts > ${tsOf(since)}
            order by device_id, identifier, ts desc
          ), upserted as (
            insert into attribute_values (device_id, identifier, project_id, value, attr_type, data_type, ts)
            select device_id, identifier, project_id,
              coalesce(to_jsonb(num), to_jsonb(bool), to_jsonb(str), json), 'report',
              case when num is not null then 'number' when bool is not null then 'boolean' when str is not null then 'string'
                   when jsonb_typeof(json) = 'array' then 'array' else 'object' end,
              ${msOf(sql`ts`)}
            from latest where exists (select 1 from devices where devices.id = latest.device_id)
            on conflict (device_id, identifier) do update
              set value = excluded.value, attr_type = excluded.attr_type, data_type = excluded.data_type, ts = excluded.ts
              where attribute_values.ts < excluded.ts
            returning 1
          ), reported as (
            select device_id, max(${msOf(sql`ts`)}) as ms from latest group by device_id
          ), activated as (
            -- The activity a lost node had not written yet (its presence is written behind): a device whose only
            -- acknowledged reports are in history counts as active, so its silence timers are armed
            -- (docs/cluster.md §4). Only devices never written active: few rows, whatever the fleet. A back-dated
            -- series time in the future counts as now.
            update devices d set active = true,
              active_ts = d.active_ts || jsonb_build_object('attributes', least(r.ms, ${msOf(sql`now()`)}))
            from reported r
            where d.id = r.device_id and not d.active
          ) select count(*) as n from upserted`),
      );
      return Number(rows[0]?.n ?? 0);
    },

    /** A page of one attribute's history, newest first, within [from, to]. */
    async series(
      projectId: string,
      deviceId: string,
      identifier: string,
      from: number,
      to: number,
      limit: number,
      offset: number,
    ): Promise<HistoryPoint[]> {
      const rows = rowsOf<StoredPoint>(
        await db.execute(sql`
          select ${msOf(sql`ts`)} as ts, num, bool, str, json from attribute_history
          where device_id = ${deviceId} and identifier = ${identifier} and project_id = ${projectId}
            and ts >= ${tsOf(from)} and ts <= ${tsOf(to)}
          -- The column, not the output alias "ts" (a computed value): only the column follows the index order.
          order by attribute_history.ts desc limit ${limit} offset ${offset}`),
      );
      return rows.map(pointOf);
    },

    /**
     * Numeric aggregates of identifiers per interval over [from, to): `date_bin` buckets aligned to
     * the epoch (plain PostgreSQL has it; TimescaleDB's time_bucket gives the same buckets).
     */
    async aggregate(
      projectId: string,
      deviceId: string,
      identifiers: string[],
      fn: Aggregate,
      from: number,
      to: number,
      intervalMs: number,
    ): Promise<Bucket[]> {
      const bucket = sql`date_bin(${intervalMs}::int8 * interval '1 millisecond', ts, timestamptz 'epoch')`;
      const rows = rowsOf<{ identifier: string; ts: string | number; value: string | number | null }>(
        await db.execute(sql`
          select identifier, bucket as ts, ${aggregateSql[fn]} as value from (
            select identifier, ${msOf(bucket)} as bucket, ts, num from attribute_history
            where device_id = ${deviceId} and project_id = ${projectId}
              and identifier in (${sql.join(
                identifiers.map((i) => sql`${i}`),
                sql`, `,
              )})
              and ts >= ${tsOf(from)} and ts < ${tsOf(to)}
          ) v
          group by identifier, bucket
          order by identifier, bucket`),
      );
      return rows.map((r) => ({
        identifier: r.identifier,
        ts: Number(r.ts),
        value: r.value === null ? null : Number(r.value),
      }));
    },

    /** Every value of identifiers in [from, to], oldest first, in pages keyed by time (CSV export). */
    async range(
      projectId: string,
      deviceId: string,
      identifiers: string[],
      from: number,
      to: number,
      after: number | undefined,
      limit: number,
    ) {
      const rows = rowsOf<StoredPoint & { identifier: string }>(
        await db.execute(sql`
          select identifier, ${msOf(sql`ts`)} as ts, num, bool, str, json from attribute_history
          where device_id = ${deviceId} and project_id = ${projectId}
            and identifier in (${sql.join(
              identifiers.map((i) => sql`${i}`),
              sql`, `,
            )})
            and ts >= ${tsOf(after !== undefined ? after + 1 : from)} and ts <= ${tsOf(to)}
          order by attribute_history.ts, identifier limit ${limit}`),
      );
      return rows.map((r) => ({ identifier: r.identifier, ...pointOf(r) }));
    },

    /** Removes the history of identifiers of a device (attributes_remove with `history: true`). */
    async remove(projectId: string, deviceId: string, identifiers: string[]): Promise<void> {
      if (!identifiers.length) return;
      await db.execute(sql`
        delete from attribute_history where device_id = ${deviceId} and project_id = ${projectId}
          and identifier in (${sql.join(
            identifiers.map((i) => sql`${i}`),
            sql`, `,
          )})`);
    },

    /**
     * Removes all history of deleted devices (no foreign key: it would cost every insert a lookup), up to
     * HISTORY_DELETE_DEVICES devices a statement, each statement on its own. By device: the series index leads
     * with the device, so no partition is read whole; and TimescaleDB compresses in batches segmented by device
     * and identifier, so versions before 2.21 (no whole-batch delete) decompress only these devices' batches,
     * within their limit of decompressed rows per statement (the 2.23 of the tests deletes whole batches).
     */
    async removeDevices(deviceIds: readonly string[]): Promise<void> {
      for (let i = 0; i < deviceIds.length; i += HISTORY_DELETE_DEVICES) {
        const list = sql.join(
          deviceIds.slice(i, i + HISTORY_DELETE_DEVICES).map((d) => sql`${d}`),
          sql`, `,
        );
        await db.execute(sql`delete from attribute_history where device_id in (${list})`);
      }
    },

    /** Deletes one project's history older than `before` (a project keeping less than the server). */
    async deleteProjectBefore(projectId: string, before: number): Promise<void> {
      await db.execute(sql`delete from attribute_history where project_id = ${projectId} and ts < ${tsOf(before)}`);
    },

    /**
     * Drops whole days (partitions or chunks) older than `before`: the server-wide retention. Returns
     * how many partitions or chunks went.
     */
    async dropBefore(before: number): Promise<number> {
      if ((await detect()) === 'timescale') {
        const rows = rowsOf<{ c: string }>(
          await db.execute(sql`select drop_chunks('attribute_history', older_than => ${tsOf(before)}) as c`),
        );
        return rows.length;
      }
      const rows = rowsOf<{ name: string }>(
        await db.execute(sql`
          select c.relname as name from pg_inherits i
          join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent
          where p.relname = 'attribute_history'`),
      );
      let dropped = 0;
      for (const { name } of rows) {
        const day = dayOfName(name);
        if (day === undefined || (day + 1) * DAY_MS > before) continue;
        await db.execute(sql.raw(`drop table if exists ${name}`));
        partitions.delete(day);
        dropped += 1;
      }
      return dropped;
    },

    /**
     * TimescaleDB settings of the server (chunk interval, compression after N days, retention):
     * applied at start, replacing the previous policies when they differ. The Apache-2 edition has
     * no policies (calling them raises "not supported under the current "apache" license"): there
     * only the chunk interval is set, and the retention job (retention.ts) drops old chunks itself.
     */
    async applyTimescalePolicies(opts: {
      chunkHours: number;
      compressAfterDays: number;
      retentionDays: number;
    }): Promise<TimescalePolicies> {
      if ((await detect()) !== 'timescale') return { mode: 'partitioned' };
      await db.execute(
        sql`select set_chunk_time_interval('attribute_history', ${opts.chunkHours}::int * interval '1 hour')`,
      );
      const license = await timescaleLicense(db);
      if (license !== 'timescale') return { mode: 'timescale', license, policies: false };
      await db.execute(sql`select remove_compression_policy('attribute_history', if_exists => true)`);
      if (opts.compressAfterDays > 0) {
        await db.execute(
          sql.raw(
            `alter table attribute_history set (timescaledb.compress, timescaledb.compress_segmentby = 'device_id, identifier', timescaledb.compress_orderby = 'ts desc')`,
          ),
        );
        await db.execute(
          sql`select add_compression_policy('attribute_history', ${opts.compressAfterDays}::int * interval '1 day')`,
        );
      }
      await db.execute(sql`select remove_retention_policy('attribute_history', if_exists => true)`);
      if (opts.retentionDays > 0) {
        await db.execute(
          sql`select add_retention_policy('attribute_history', ${opts.retentionDays}::int * interval '1 day')`,
        );
      }
      return { mode: 'timescale', license, policies: true };
    },
  };
}
export type HistoryRepository = ReturnType<typeof createHistoryRepository>;
