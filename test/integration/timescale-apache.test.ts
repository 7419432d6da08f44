import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TelemetryRow } from '../../src/db/repositories/history.repository.ts';
import { rowsOf } from '../../src/db/client.ts';
import { timescaleLicense } from '../../src/db/timescale.ts';
import { createDataMessagesRepository } from '../../src/db/repositories/data-messages.repository.ts';
import { createRetention } from '../../src/domain/telemetry/retention.ts';
import { createProject, createTestApp, expectOk, type TestContext } from '../helpers/app.ts';
import { openTimescalePglite, type TimescalePglite } from '../helpers/timescale-pglite.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const LICENSE_ERROR = 'functionality not supported under the current "apache" license';

/**
 * The Apache-2 edition of TimescaleDB: hypertables and drop_chunks, no compression or retention
 * policies. The PGlite build is the community edition and refuses `SET timescaledb.license =
 * 'apache'`, so a stand-in comes first on the search path: `current_setting` answers 'apache' for
 * the license, and the policy functions raise what the Apache edition raises (0A000).
 */
async function actAsApacheEdition(ts: TimescalePglite) {
  const refuse = (name: string, args: string, result: string) => `
    create function apache_edition.${name}(${args}) returns ${result} language plpgsql as $f$
    begin
      raise exception using errcode = '0A000', message = '${LICENSE_ERROR}',
        hint = 'Upgrade your license to ''timescale'' to use this free community feature.';
    end $f$;`;
  await ts.raw.exec(`
    create schema apache_edition;
    create function apache_edition.current_setting(name text, missing_ok boolean) returns text language sql as $f$
      select case when name = 'timescaledb.license' then 'apache' else pg_catalog.current_setting(name, missing_ok) end
    $f$;
    ${refuse('add_compression_policy', 'hypertable regclass, compress_after interval, if_not_exists boolean default false', 'integer')}
    ${refuse('remove_compression_policy', 'hypertable regclass, if_exists boolean default false', 'boolean')}
    ${refuse('add_retention_policy', 'relation regclass, drop_after interval, if_not_exists boolean default false', 'integer')}
    ${refuse('remove_retention_policy', 'relation regclass, if_exists boolean default false', 'void')}
    set search_path = apache_edition, pg_catalog, public;`);
}

let ts: TimescalePglite;
let ctx: TestContext;

beforeAll(async () => {
  ts = await openTimescalePglite({ migrate: true });
  await actAsApacheEdition(ts);
  ctx = await createTestApp({}, { database: { db: ts.db, driver: 'pglite', migrate: ts.migrate, close: ts.close } });
});
afterAll(() => ctx?.close());

describe('TimescaleDB without the community license (Apache-2 edition)', () => {
  it('is recognised, and its policy functions refuse as the Apache edition does', async () => {
    expect(await timescaleLicense(ctx.database.db)).toBe('apache');
    await expect(
      ctx.database.db.execute(sql`select add_retention_policy('attribute_history', ${30}::int * interval '1 day')`),
    ).rejects.toMatchObject({
      cause: expect.objectContaining({ message: LICENSE_ERROR, code: '0A000' }),
    });
  });

  it('keeps the hypertable and its chunk interval, and calls no policy', async () => {
    const store = ctx.services.historyStore;
    expect(await store.detect()).toBe('timescale');
    const applied = await store.applyTimescalePolicies({ chunkHours: 12, compressAfterDays: 7, retentionDays: 365 });
    expect(applied).toEqual({ mode: 'timescale', license: 'apache', policies: false });
    const [dimension] = rowsOf<{ interval: string }>(
      await ctx.database.db.execute(
        sql`select time_interval::text as interval from timescaledb_information.dimensions where hypertable_name = 'attribute_history'`,
      ),
    );
    expect(dimension?.interval).toBe('12:00:00');
    const jobs = rowsOf<{ n: number }>(
      await ctx.database.db.execute(
        sql`select count(*)::int as n from timescaledb_information.jobs where hypertable_name = 'attribute_history'`,
      ),
    );
    expect(jobs[0]?.n).toBe(0);
  });

  it("removes old history with the server's own retention job", async () => {
    const p = await createProject(ctx, 'apache');
    const d = expectOk(await p.api.post('/api/v1/device', { name: 'old and new' }));
    const row = (ts: number, value: number): TelemetryRow => ({
      projectId: p.project.id,
      deviceId: d.id,
      identifier: 't',
      ts,
      value,
      dataType: 'number',
      attrType: 'report',
      history: true,
    });
    const old = Date.now() - 40 * DAY;
    const recent = Date.now() - 2 * DAY;
    await ctx.database.db.transaction((tx) => ctx.services.historyStore.write(tx, [row(old, 1), row(recent, 2)]));
    const values = async () =>
      (await ctx.services.historyStore.series(p.project.id, d.id, 't', old - DAY, Date.now(), 10, 0)).map(
        (v) => v.value,
      );
    expect(await values()).toEqual([2, 1]);

    const retention = createRetention({
      history: ctx.services.historyStore,
      messages: createDataMessagesRepository(ctx.database.db),
      settings: ctx.services.projectSettings,
      defaultDays: 30,
    });
    const result = await retention.runOnce();
    expect(result.dropped).toBeGreaterThanOrEqual(1);
    expect(await values()).toEqual([2]);
  });
});
