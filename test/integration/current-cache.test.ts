import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowsOf } from '../../src/db/client.ts';
import { DAY_MS } from '../../src/lib/time.ts';
import { createServices } from '../../src/composition/services.ts';
import { createProject, createTestApp, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';
import { addAuthenticatedDevice } from '../helpers/factories.ts';
import { openPrivateTestDatabase } from '../helpers/db.ts';

/** Current values of fresh reports wait in memory and are written once per interval (architecture.md §9). */
let ctx: TestContext;
let p: ProjectFixture;
beforeAll(async () => {
  // A database of its own: a day partition is dropped below.
  ctx = await createTestApp({}, { database: await openPrivateTestDatabase() });
  p = await createProject(ctx);
});
afterAll(() => ctx?.close());

async function newDevice(name = 'd') {
  const { id, identity } = await addAuthenticatedDevice(ctx, p, { name });
  return { id, identity };
}
const stored = async (deviceId: string) =>
  Object.fromEntries(
    rowsOf<{ identifier: string; value: unknown }>(
      await ctx.database.db.execute(sql`select identifier, value from attribute_values where device_id = ${deviceId}`),
    ).map((r) => [r.identifier, r.value]),
  );

describe('current-values cache', () => {
  it('serves fresh reports from memory, writes them on flush with a checkpoint, and writes back-dated ones at once', async () => {
    const d = await newDevice();
    await ctx.services.currentValues.report(d.identity, { t: 1 });
    await ctx.services.currentValues.report(d.identity, { t: 2, h: 5 });
    expect(await stored(d.id)).toEqual({});
    expect(await ctx.services.currentValues.get(p.project.id, d.id)).toEqual({ t: 2, h: 5 });
    expect(
      expectOk(await p.api.get(`/api/v1/device/${d.id}/attributes`)).map((a: { value: unknown }) => a.value),
    ).toEqual([5, 2]);
    await ctx.services.currentCache.flush();
    expect(await stored(d.id)).toEqual({ t: 2, h: 5 });
    const [checkpoint] = rowsOf<{ ts: string }>(
      await ctx.database.db.execute(sql`select ts from telemetry_checkpoints where name = 'current_values'`),
    );
    expect(Number(checkpoint!.ts)).toBeGreaterThan(Date.now() - 60_000);

    const old = await newDevice('old');
    await ctx.services.currentValues.reportSeries(old.identity, [{ ts: Date.now() - 3_600_000, attributes: { t: 9 } }]);
    expect(await stored(old.id)).toEqual({ t: 9 });
  });

  it('forgets waiting values of removed attributes', async () => {
    const d = await newDevice();
    await ctx.services.currentValues.report(d.identity, { a: 1, b: 2 });
    expectOk(await p.api.post(`/api/v1/device/${d.id}/attributes_remove`, { keys: ['a'] }));
    await ctx.services.currentCache.flush();
    expect(await stored(d.id)).toEqual({ b: 2 });
  });

  it('after a crash, rebuilds current values from history written since the checkpoint', async () => {
    const d = await newDevice();
    await ctx.services.currentValues.report(d.identity, { t: 1 });
    await ctx.services.currentCache.flush();
    // Reports committed to history, their current values still waiting when the process "dies".
    await ctx.services.currentValues.report(d.identity, { t: 2, fresh: 'yes' });
    expect(await stored(d.id)).toEqual({ t: 1 });
    const restarted = createServices({ db: ctx.database.db });
    expect(await restarted.currentCache.recover()).toBeGreaterThanOrEqual(2);
    expect(await stored(d.id)).toEqual({ t: 2, fresh: 'yes' });
    // Recovery never moves a value backwards.
    await ctx.services.currentValues.setCloud({ projectId: p.project.id }, d.id, { t: 3 });
    await restarted.currentCache.recover();
    expect((await stored(d.id)).t).toBe(3);
  });

  it('recovers a crash that came before the first flush (the start writes a checkpoint)', async () => {
    const first = createServices({ db: ctx.database.db });
    await first.currentCache.recover();
    const d = await newDevice('early');
    await first.currentValues.report(d.identity, { boot: 1 });
    expect(await stored(d.id)).toEqual({});
    const second = createServices({ db: ctx.database.db });
    await second.currentCache.recover();
    expect(await stored(d.id)).toEqual({ boot: 1 });
    await first.ingest.stop();
    await second.ingest.stop();
  });

  it('recreates a day partition that another process dropped, and stores the report', async () => {
    if ((await ctx.services.historyStore.detect()) !== 'partitioned') return;
    const d = await newDevice('dropped');
    const day = Math.floor((Date.now() - 100 * DAY_MS) / DAY_MS) * DAY_MS;
    await ctx.services.currentValues.reportSeries(d.identity, [{ ts: day + 1000, attributes: { v: 1 } }]);
    const name = `attribute_history_d${new Date(day).toISOString().slice(0, 10).replaceAll('-', '')}`;
    await ctx.database.db.execute(sql.raw(`drop table ${name}`));
    await ctx.services.currentValues.reportSeries(d.identity, [{ ts: day + 2000, attributes: { v: 2 } }]);
    expect(
      (await ctx.services.historyStore.series(p.project.id, d.id, 'v', day, day + DAY_MS, 10, 0)).map((x) => x.value),
    ).toEqual([2]);
  });
});
