import { sql, type SQLWrapper } from 'drizzle-orm';
import type { Db } from '../../src/db/client.ts';

/**
 * Runs `fn` against a stand-in database that records every SELECT the code builds instead of
 * running it (each answers no rows). The EXPLAINs below are then of exactly the SQL the
 * repositories send, not of a hand-written copy that could drift from it.
 */
export async function captureSelects(db: Db, fn: (recording: Db) => Promise<unknown>): Promise<SQLWrapper[]> {
  const captured: SQLWrapper[] = [];
  const wrap = (builder: object): object =>
    new Proxy(builder, {
      get(target, prop, receiver) {
        if (prop === 'then') {
          captured.push(target as SQLWrapper);
          return (resolve: (rows: unknown[]) => void) => resolve([]);
        }
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          const out: unknown = value.apply(target, args);
          return out !== null && typeof out === 'object' && 'getSQL' in out ? wrap(out) : out;
        };
      },
    });
  const recording = new Proxy(db, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (prop !== 'select' || typeof value !== 'function') return value;
      return (...args: unknown[]) => wrap(value.apply(target, args) as object);
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

/** EXPLAIN (ANALYZE, BUFFERS) of one query, reduced to its plan tree and timings. */
export async function explain(db: Db, query: SQLWrapper): Promise<PlanSummary> {
  const rows = rowsOf(await db.execute(sql`explain (analyze, buffers, format json) ${query.getSQL()}`));
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

const STATEMENTS = new Set(['select', 'insert', 'update', 'delete', 'execute', 'transaction']);

/**
 * The database with a counter of the statements built through it (one per select/insert/update/
 * delete/execute, one per transaction): a request's count shows whether a route does N+1 queries.
 */
export function countingDb(db: Db): { db: Db; count: () => number } {
  let n = 0;
  const counted = new Proxy(db, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof prop !== 'string' || !STATEMENTS.has(prop) || typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        n++;
        return value.apply(target, args);
      };
    },
  });
  return { db: counted, count: () => n };
}
