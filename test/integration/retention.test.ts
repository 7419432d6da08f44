import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDataMessagesRepository } from '../../src/db/repositories/data-messages.repository.ts';
import type { TelemetryRow } from '../../src/db/repositories/history.repository.ts';
import { newId } from '../../src/lib/ids.ts';
import { DAY_MS } from '../../src/lib/time.ts';
import { createProject, createTestApp, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';
import { addDevice } from '../helpers/factories.ts';
import { openPrivateTestDatabase } from '../helpers/db.ts';

/**
 * History and data-stream retention: whole days older than the longest
 * retention go, projects keeping less lose their older rows, data-stream messages follow the same
 * retention. Dates relative to now: 400 days old is past the default 365, 2 days old is kept.
 * Its own database: dropping whole days is database-wide.
 */
let ctx: TestContext;

beforeAll(async () => {
  ctx = await createTestApp({}, { database: await openPrivateTestDatabase() });
});
afterAll(() => ctx?.close());

interface Device {
  f: ProjectFixture;
  id: string;
}

async function deviceOf(name: string): Promise<Device> {
  const f = await createProject(ctx, name);
  return { f, id: (await addDevice(f.api, { name })).id };
}

/** History of attribute `v` at `now - daysAgo`, written past the report checks (a report that old is refused). */
async function historyAt(d: Device, now: number, daysAgo: number[]) {
  const store = ctx.services.historyStore;
  const rows: TelemetryRow[] = daysAgo.map((days) => ({
    projectId: d.f.project.id,
    deviceId: d.id,
    identifier: 'v',
    ts: now - days * DAY_MS,
    value: days,
    dataType: 'number',
    attrType: 'report',
    history: true,
  }));
  await store.ensurePartitions(rows.map((r) => store.dayOf(r.ts)));
  await ctx.database.db.transaction((tx) => store.write(tx, rows));
}
const historyDays = async (d: Device, now: number) =>
  (await ctx.services.historyStore.series(d.f.project.id, d.id, 'v', now - 1000 * DAY_MS, now, 100, 0))
    .map((p) => p.value)
    .sort((a, b) => Number(a) - Number(b));

async function messagesAt(d: Device, now: number, daysAgo: number[]) {
  await createDataMessagesRepository(ctx.database.db).insertMany(
    daysAgo.map((days) => ({
      id: newId(now - days * DAY_MS),
      projectId: d.f.project.id,
      deviceId: d.id,
      identifier: 'raw',
      direction: 'up' as const,
      transport: 'tcp' as const,
      payload: Buffer.from(String(days)),
      ts: now - days * DAY_MS,
    })),
  );
}
const messageDays = async (d: Device) =>
  (await createDataMessagesRepository(ctx.database.db).page(d.f.project.id, d.id, 'raw', {}, 100, 0))
    .map((m) => Number(Buffer.from(m.payload).toString()))
    .sort((a, b) => a - b);

const retention = (f: ProjectFixture, days: number | null) =>
  f.api.put('/api/v1/project/settings', { history_retention_days: days });

describe('retention', () => {
  it('drops whole days older than the default retention and keeps the recent ones', async () => {
    const d = await deviceOf('default');
    const now = Date.now();
    await historyAt(d, now, [400, 370, 2]);
    await messagesAt(d, now, [400, 2]);
    const { dropped } = await ctx.services.retention.runOnce();
    expect(dropped).toBeGreaterThanOrEqual(2);
    expect(await historyDays(d, now)).toEqual([2]);
    expect(await messageDays(d)).toEqual([2]);
  });

  it('trims the projects on the default while another keeps longer, and a project keeping less', async () => {
    const onDefault = await deviceOf('on the default');
    const longer = await deviceOf('keeps 800 days');
    const shorter = await deviceOf('keeps 7 days');
    expectOk(await retention(longer.f, 800));
    expectOk(await retention(shorter.f, 7));
    try {
      const now = Date.now();
      for (const d of [onDefault, longer, shorter]) {
        await historyAt(d, now, [400, 10, 2]);
        await messagesAt(d, now, [400, 10, 2]);
      }
      await ctx.services.retention.runOnce();
      expect(await historyDays(onDefault, now)).toEqual([2, 10]);
      expect(await historyDays(longer, now)).toEqual([2, 10, 400]);
      expect(await historyDays(shorter, now)).toEqual([2]);
      expect(await messageDays(onDefault)).toEqual([2, 10]);
      expect(await messageDays(longer)).toEqual([2, 10, 400]);
      expect(await messageDays(shorter)).toEqual([2]);
    } finally {
      expectOk(await retention(longer.f, null));
    }
  });
});
