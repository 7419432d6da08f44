import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProject, createTestApp, type TestContext } from '../helpers/app.ts';
import { addAuthenticatedDevice } from '../helpers/factories.ts';
import { openPrivateTestDatabase } from '../helpers/db.ts';

/**
 * The ingest pipeline when PostgreSQL drops its connections mid-stream (a restart, a failover): the
 * writes in flight fail, the pipeline retries until the database answers again, every report
 * resolves and each is stored exactly once. Needs a PostgreSQL server (TEST_DATABASE_URL): the
 * embedded database has no connections to lose.
 */
const url = process.env.TEST_DATABASE_URL;

describe.skipIf(!url)('telemetry ingest across dropped database connections', () => {
  let ctx: TestContext;
  let admin: postgres.Sql;
  beforeAll(async () => {
    // A database of its own: every other connection to it is ended below.
    const database = await openPrivateTestDatabase();
    ctx = await createTestApp({}, { database, settings: { ingestBatchSize: 50, ingestBatchDelayMs: 2 } });
    admin = postgres(database.url!, { max: 1, onnotice: () => {} });
  });
  afterAll(async () => {
    await admin?.end({ timeout: 5 });
    await ctx?.close();
  });

  async function deviceIdentity(name: string) {
    const p = await createProject(ctx);
    const d = await addAuthenticatedDevice(ctx, p, { name });
    return { projectId: p.project.id, deviceId: d.id, identity: d.identity };
  }

  /** Submits 400 reports through `report(i)`, ending every other connection of the database three times meanwhile. */
  async function reportThroughKills(report: (i: number) => Promise<unknown>) {
    const retriesBefore = ctx.services.ingest.stats().retries;
    let killed = 0;
    const reports: Array<Promise<unknown>> = [];
    for (let i = 0; i < 400; i++) {
      reports.push(report(i));
      if (i % 100 === 50) {
        // Every connection of this database but ours goes away, as in a server restart.
        const rows = await admin`select pg_terminate_backend(pid) as ok from pg_stat_activity
          where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'`;
        killed += rows.filter((r) => r.ok).length;
      }
      if (i % 20 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    await Promise.all(reports);
    expect(killed).toBeGreaterThan(0);
    expect(ctx.services.ingest.stats().retries).toBeGreaterThan(retriesBefore);
  }

  const sorted = (points: Array<{ value: unknown }>) => points.map((s) => s.value as number).sort((a, b) => a - b);
  const all400 = Array.from({ length: 400 }, (_, i) => i);

  it('retries until the database answers and stores every acknowledged back-dated report once (a transaction per batch)', async () => {
    const { projectId, deviceId, identity } = await deviceIdentity('back-dated');
    const t0 = Date.now() - 600_000;
    await reportThroughKills((i) =>
      ctx.services.currentValues.reportSeries(identity, [{ ts: t0 + i, attributes: { n: i } }]),
    );
    expect(sorted(await ctx.services.historyStore.series(projectId, deviceId, 'n', t0, t0 + 1000, 1000, 0))).toEqual(
      all400,
    );
  }, 60_000);

  it('does the same for fresh reports (one prepared INSERT per batch, re-prepared on the new connections)', async () => {
    const { projectId, deviceId, identity } = await deviceIdentity('fresh');
    const t0 = Date.now();
    await reportThroughKills((i) => ctx.services.currentValues.report(identity, { n: i }));
    expect(
      sorted(await ctx.services.historyStore.series(projectId, deviceId, 'n', t0 - 1000, Date.now() + 1000, 1000, 0)),
    ).toEqual(all400);
  }, 60_000);
});
