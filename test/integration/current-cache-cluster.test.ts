import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowsOf } from '../../src/db/client.ts';
import type { TelemetryRow } from '../../src/db/repositories/history.repository.ts';
import { createCurrentCache } from '../../src/domain/telemetry/current-cache.ts';
import { createProject, createTestApp, type TestContext } from '../helpers/app.ts';
import { addDevice } from '../helpers/factories.ts';
import { openPrivateTestDatabase } from '../helpers/db.ts';
import { until } from '../helpers/wait.ts';

/**
 * The current-values checkpoint in cluster mode (docs/cluster.md §4): each node records its own; the
 * cluster-wide one, kept by one node, never passes a live node's unflushed values, and a lost node's
 * values are rebuilt from history before it passes them.
 */
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestApp({}, { database: await openPrivateTestDatabase() });
});
afterAll(() => ctx?.close());

const checkpoint = async (name: string) => {
  const [row] = rowsOf<{ ts: string }>(
    await ctx.database.db.execute(sql`select ts from telemetry_checkpoints where name = ${name}`),
  );
  return row ? Number(row.ts) : undefined;
};
const stored = async (deviceId: string) =>
  rowsOf<{ value: unknown }>(
    await ctx.database.db.execute(sql`select value from attribute_values where device_id = ${deviceId}`),
  ).map((r) => r.value);
/** Waits that ask the checkpoints table do so every 50 ms (each probe is a query), for at most 5 s. */
const DB_POLL = { interval: 50 };

describe('current-values checkpoints of a cluster', () => {
  it("keep the shared checkpoint at the oldest live node's, and rebuild a lost node's values before passing it", async () => {
    const p = await createProject(ctx);
    const d = await addDevice(p.api, { name: 'reporting-on-b' });
    let t = Date.now();
    const clock = () => t;
    const alive = new Set(['a', 'b']);
    const cacheOf = (node: string, keeper: boolean) =>
      createCurrentCache({
        history: ctx.services.historyStore,
        clock,
        flushMs: 50,
        cluster: { node, keeper: () => keeper, alive: () => alive },
      });
    const a = cacheOf('a', true);
    const b = cacheOf('b', false);
    await a.recover();
    await b.recover();
    const started = t;
    expect(await checkpoint('current_values@a')).toBe(started);
    expect(await checkpoint('current_values@b')).toBe(started);
    expect(await checkpoint('current_values')).toBeGreaterThanOrEqual(started);

    // Node B takes a fresh report: in history, its current value waiting in B's memory.
    const row: TelemetryRow = {
      projectId: p.project.id,
      deviceId: d.id,
      identifier: 'temp',
      ts: t,
      value: 21.5,
      dataType: 'number',
      attrType: 'report',
      history: true,
    };
    await b.write([row], 'batch-on-b');
    expect(b.size).toBe(1);
    expect(await stored(d.id)).toEqual([]);

    // A flushes and keeps the shared checkpoint: it stays at B's, behind B's waiting value.
    t += 60_000;
    a.start();
    try {
      await until(async () => (await checkpoint('current_values@a')) === t, 'A’s own checkpoint at t', DB_POLL);
      await new Promise((r) => setTimeout(r, 200));
      expect(await checkpoint('current_values')).toBe(started);

      // B dies with its value unwritten: A rebuilds it from history, then the shared checkpoint moves on.
      alive.delete('b');
      expect(await a.nodeLost('b')).toBe(1);
      expect(await stored(d.id)).toEqual([21.5]);
      await until(async () => (await checkpoint('current_values')) === t, 'the shared checkpoint at t', DB_POLL);
    } finally {
      await a.stop();
    }
  });

  it("holds the shared checkpoint back while a lost node's rebuild fails, until it succeeds", async () => {
    const p = await createProject(ctx);
    const d = await addDevice(p.api, { name: 'reporting-on-e' });
    let t = Date.now();
    const alive = new Set(['k', 'e']);
    let failRebuild = false;
    // The database away during the first rebuild of the lost node's values.
    const history = Object.create(ctx.services.historyStore) as typeof ctx.services.historyStore;
    history.rebuildCurrentSince = async (since: number) => {
      if (failRebuild) throw new Error('connection refused');
      return ctx.services.historyStore.rebuildCurrentSince(since);
    };
    const cacheOf = (node: string, keeper: boolean) =>
      createCurrentCache({
        history,
        clock: () => t,
        flushMs: 50,
        cluster: { node, keeper: () => keeper, alive: () => alive },
      });
    const k = cacheOf('k', true);
    const e = cacheOf('e', false);
    await k.recover();
    await e.recover();
    await e.write(
      [
        {
          projectId: p.project.id,
          deviceId: d.id,
          identifier: 'temp',
          ts: t,
          value: 7,
          dataType: 'number',
          attrType: 'report',
          history: true,
        },
      ],
      'batch-on-e',
    );
    t += 60_000;
    k.start();
    try {
      alive.delete('e');
      failRebuild = true;
      await expect(k.nodeLost('e')).rejects.toThrow('connection refused');
      await until(async () => (await checkpoint('current_values@k')) === t, 'K’s own checkpoint at t', DB_POLL);
      await new Promise((r) => setTimeout(r, 200));
      // (Never back: another test of this file may have moved it past `started`; not to K's t.)
      expect(await checkpoint('current_values')).toBeLessThan(t);
      // Tried again (services.ts retries it), now with the database back: rebuilt, then the checkpoint moves.
      failRebuild = false;
      expect(await k.nodeLost('e')).toBe(1);
      expect(await stored(d.id)).toEqual([7]);
      await until(async () => (await checkpoint('current_values')) === t, 'the shared checkpoint at t', DB_POLL);
    } finally {
      await k.stop();
    }
  });

  it('a node that is not the keeper leaves the shared checkpoint and lost nodes alone', async () => {
    let t = Date.now();
    const c = createCurrentCache({
      history: ctx.services.historyStore,
      clock: () => t,
      cluster: { node: 'c', keeper: () => false, alive: () => ['c'] },
    });
    const before = await checkpoint('current_values');
    await c.recover();
    t += 1_000;
    await c.flush();
    expect(await checkpoint('current_values@c')).toBe(t);
    expect(await checkpoint('current_values')).toBe(before);
    expect(await c.nodeLost('a')).toBe(0);
  });
});
