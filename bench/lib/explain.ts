import { sql, type SQLWrapper } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import type { Db } from '../../src/db/client.ts';

/** What a prepared statement built through a traced builder offers its caller. */
interface PreparedLike {
  execute(values?: Record<string, unknown>): Promise<unknown>;
}

interface BuilderHooks {
  /** The builder runs (`await builder` or `builder.execute()`): `real` runs it for real. */
  run(builder: SQLWrapper, real: () => Promise<unknown>): Promise<unknown>;
  /** The builder is prepared (`builder.prepare(name)`): `real` prepares it for real. */
  prepare(builder: SQLWrapper, real: () => PreparedLike): PreparedLike;
}

/**
 * A query builder (and every builder its chained calls answer) whose runs and preparations go through
 * `hooks`; everything else is the builder's own.
 */
function traced(builder: object, hooks: BuilderHooks): object {
  return new Proxy(builder, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      const query = target as SQLWrapper;
      if (prop === 'then' || prop === 'catch' || prop === 'finally') {
        // The builder's own then() with no callbacks runs it once; catch/finally go through it too.
        const run = () => hooks.run(query, () => (target as PromiseLike<unknown>).then() as Promise<unknown>);
        return (...args: unknown[]) => (Promise.prototype[prop] as (...a: unknown[]) => unknown).apply(run(), args);
      }
      if (prop === 'execute')
        return (...args: unknown[]) => hooks.run(query, () => value.apply(target, args) as Promise<unknown>);
      if (prop === 'prepare')
        return (...args: unknown[]) => hooks.prepare(query, () => value.apply(target, args) as PreparedLike);
      return (...args: unknown[]) => {
        const out: unknown = value.apply(target, args);
        return out !== null && typeof out === 'object' && 'getSQL' in out ? traced(out, hooks) : out;
      };
    },
  });
}

/**
 * A captured statement: the builder's SQL, and for a prepared statement the placeholder values of the
 * execution (`explain` binds them, as the prepared statement's `execute` does).
 */
export interface CapturedQuery extends SQLWrapper {
  placeholders?: Record<string, unknown>;
}

/**
 * Runs `fn` against a stand-in database that records every SELECT the code runs instead of running
 * it (each answers no rows): an awaited or executed builder, and each `execute` of a statement
 * prepared from one (with its placeholder values). The EXPLAINs below are then of exactly the SQL the
 * repositories send, not of a hand-written copy that could drift from it.
 */
export async function captureSelects(db: Db, fn: (recording: Db) => Promise<unknown>): Promise<CapturedQuery[]> {
  const captured: CapturedQuery[] = [];
  const hooks: BuilderHooks = {
    run(builder) {
      captured.push(builder);
      return Promise.resolve([]);
    },
    // Never prepared for real: the stand-in records each execution instead of running it.
    prepare: (builder) => ({
      execute(values = {}) {
        captured.push({ getSQL: () => builder.getSQL(), placeholders: { ...values } });
        return Promise.resolve([]);
      },
    }),
  };
  const recording = new Proxy(db, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (prop !== 'select' || typeof value !== 'function') return value;
      return (...args: unknown[]) => traced(value.apply(target, args) as object, hooks);
    },
  });
  await fn(recording);
  return captured;
}

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Join Type'?: string;
  'Scan Direction'?: string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Actual Total Time'?: number;
  'Heap Fetches'?: number;
  'Shared Hit Blocks'?: number;
  'Shared Read Blocks'?: number;
  'Rows Removed by Filter'?: number;
  Plans?: PlanNode[];
}

interface ExplainJson {
  Plan: PlanNode;
  'Planning Time': number;
  'Execution Time': number;
}

export interface PlanSummary {
  lines: string[];
  nodeTypes: string[];
  executionMs: number;
  planningMs: number;
  /** Sequential scans that read 1,000 rows or more. */
  seqScans: string[];
}

/** postgres.js answers an array of rows, PGlite an object with `rows`. */
function rowsOf(result: unknown): Record<string, unknown>[] {
  if (Array.isArray(result)) return result as Record<string, unknown>[];
  return (result as { rows: Record<string, unknown>[] }).rows;
}

const dialect = new PgDialect();

/**
 * EXPLAIN (ANALYZE, BUFFERS) of one query, reduced to its plan tree and timings. A captured prepared
 * statement runs with the placeholder values of its execution, bound as its own `execute` binds them
 * (drizzle's `fillPlaceholders`), so the plan is of real values.
 */
export async function explain(db: Db, query: CapturedQuery): Promise<PlanSummary> {
  const statement = sql`explain (analyze, buffers, format json) ${query.getSQL()}`;
  const result = query.placeholders
    ? // What db.execute does, with the values: the same text, the same parameters.
      await db._.session
        .prepareQuery(dialect.sqlToQuery(statement), undefined, undefined, false)
        .execute(query.placeholders)
    : await db.execute(statement);
  const rows = rowsOf(result);
  const cell = Object.values(rows[0] ?? {})[0];
  const parsed = (typeof cell === 'string' ? JSON.parse(cell) : cell) as ExplainJson[];
  const root = parsed[0];
  if (!root) throw new Error('EXPLAIN answered no plan');
  const lines: string[] = [];
  const nodeTypes: string[] = [];
  const seqScans: string[] = [];
  const walk = (node: PlanNode, depth: number) => {
    nodeTypes.push(node['Node Type']);
    // A seq scan over a handful of rows (the project's few device types) is the right plan.
    const scanned = (node['Actual Rows'] ?? 0) * (node['Actual Loops'] ?? 1) + (node['Rows Removed by Filter'] ?? 0);
    if (node['Node Type'] === 'Seq Scan' && scanned >= 1000)
      seqScans.push(`${node['Relation Name'] ?? '?'} (${scanned} rows)`);
    const parts = [node['Join Type'] ? `${node['Join Type']} ${node['Node Type']}` : node['Node Type']];
    if (node['Scan Direction'] === 'Backward') parts[0] += ' Backward';
    if (node['Index Name']) parts.push(`using ${node['Index Name']}`);
    if (node['Relation Name']) parts.push(`on ${node['Relation Name']}`);
    const facts = [
      `rows=${node['Actual Rows']}`,
      `loops=${node['Actual Loops']}`,
      `time=${node['Actual Total Time']?.toFixed(3)}ms`,
    ];
    if (node['Heap Fetches'] !== undefined) facts.push(`heap_fetches=${node['Heap Fetches']}`);
    if (node['Rows Removed by Filter']) facts.push(`removed_by_filter=${node['Rows Removed by Filter']}`);
    facts.push(`buffers hit=${node['Shared Hit Blocks'] ?? 0} read=${node['Shared Read Blocks'] ?? 0}`);
    lines.push(`${'  '.repeat(depth)}-> ${parts.join(' ')} (${facts.join(' ')})`);
    for (const child of node.Plans ?? []) walk(child, depth + 1);
  };
  walk(root.Plan, 0);
  return { lines, nodeTypes, executionMs: root['Execution Time'], planningMs: root['Planning Time'], seqScans };
}

/**
 * The database with a counter of the statements run through it: one per awaited or executed
 * select/insert/update/delete, one per `execute` of a statement prepared from one (a repository
 * prepares it once and runs it per call), one per db.execute, one per transaction. A builder that
 * is only built (a subquery) or prepared counts nothing. A request's count shows whether a route
 * does N+1 queries.
 */
export function countingDb(db: Db): { db: Db; count: () => number } {
  let n = 0;
  const hooks: BuilderHooks = {
    run(_builder, real) {
      n++;
      return real();
    },
    prepare(_builder, real) {
      const prepared = real();
      return new Proxy(prepared, {
        get(target, prop, receiver) {
          const value: unknown = Reflect.get(target, prop, receiver);
          if (prop !== 'execute' || typeof value !== 'function') return value;
          return (...args: unknown[]) => {
            n++;
            return value.apply(target, args) as unknown;
          };
        },
      });
    },
  };
  const counted = new Proxy(db, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      if (prop === 'select' || prop === 'insert' || prop === 'update' || prop === 'delete')
        return (...args: unknown[]) => traced(value.apply(target, args) as object, hooks);
      if (prop === 'execute' || prop === 'transaction')
        return (...args: unknown[]) => {
          n++;
          return value.apply(target, args) as unknown;
        };
      return value;
    },
  });
  return { db: counted, count: () => n };
}
