import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProject, createTestApp, expectOk, type TestContext } from '../helpers/app.ts';

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
    ctx = await createTestApp({}, { settings: { ingestBatchSize: 50, ingestBatchDelayMs: 2 } });
    admin = postgres(url!, { max: 1, onnotice: () => {} });
  });
  afterAll(async () => {
    await admin?.end({ timeout: 5 });
    await ctx?.close();
  });

  it('retries until the database answers and stores every acknowledged report once', async () => {
    const p = await createProject(ctx);
    const d = expectOk(await p.api.post('/api/v1/device', { name: 'steady' }));
    const cert = expectOk(await p.api.get(`/api/v1/device/${d.id}/certificate`));
    const identity = (await ctx.services.deviceAuth.authenticate(p.project.project_key, cert.access_token))!;

    const t0 = Date.now() - 600_000;
    let killed = 0;
    const reports: Array<Promise<void>> = [];
    for (let i = 0; i < 400; i++) {
      reports.push(ctx.services.currentValues.reportSeries(identity, [{ ts: t0 + i, attributes: { n: i } }]));
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
    const stored = await ctx.services.historyStore.series(p.project.id, d.id, 'n', t0, t0 + 1000, 1000, 0);
    expect(stored.map((s) => s.value).sort((a, b) => (a as number) - (b as number))).toEqual(Array.from({ length: 400 }, (_, i) => i));
    expect(ctx.services.ingest.stats().retries).toBeGreaterThan(0);
  }, 60_000);
});
