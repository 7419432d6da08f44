import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgres, rowsOf, type Database } from '../../src/db/client.ts';
import { createDevicesRepository } from '../../src/db/repositories/devices.repository.ts';
import { createProject, createTestApp, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';

/**
 * The device list's first page has the page size in its statement's text, so PostgreSQL reuses the plan of
 * its prepared statement instead of planning every call (src/db/repositories/devices.repository.ts
 * LITERAL_LIMITS). pg_prepared_statements is per connection: the test reads through a pool of one.
 */
const url = process.env.TEST_DATABASE_URL;
let database: Database;
let ctx: TestContext;
let p: ProjectFixture;

describe.skipIf(!url)('device list plans on PostgreSQL', () => {
  beforeAll(async () => {
    database = await openPostgres(url!, { max: 1 });
    ctx = await createTestApp({}, { database });
    p = await createProject(ctx, 'list plans');
    for (let i = 0; i < 25; i++) expectOk(await p.api.post('/api/v1/device', { name: `d${i}` }));
  });
  afterAll(async () => ctx?.close());

  const plans = async () =>
    rowsOf<{ statement: string; generic: string | number; custom: string | number }>(
      await database.db.execute(
        sql`select statement, generic_plans as generic, custom_plans as custom from pg_prepared_statements where statement like '%"device_types"%' and statement like '%order by "devices"."id" desc%'`,
      ),
    ).map((r) => ({ statement: r.statement, generic: Number(r.generic), custom: Number(r.custom) }));

  it('reuses the plan of the first page', async () => {
    const repo = createDevicesRepository(database.db);
    const scope = { projectId: p.project.id };
    const first = await repo.page(scope, {}, 20, 0);
    const deeper = await repo.page(scope, {}, 20, 20);
    // The literal statement lists what the parameterized one lists.
    const byParam = await repo.page(scope, {}, 19, 0);
    expect(first).toHaveLength(20);
    expect(deeper).toHaveLength(5);
    expect(byParam.map((d) => d.id)).toEqual(first.slice(0, 19).map((d) => d.id));
    for (let i = 0; i < 9; i++) {
      await repo.page(scope, {}, 20, 0);
      await repo.page(scope, {}, 20, 20);
    }
    const all = await plans();
    const literal = all.filter((s) => /limit 20(?!\d)/.test(s.statement) && !/offset/.test(s.statement));
    const offset = all.filter((s) => /offset \$\d+/.test(s.statement));
    expect(literal).toHaveLength(1);
    expect(literal[0]!.generic).toBeGreaterThan(0);
    // A deeper page keeps its offset as a parameter (PostgreSQL decides per call whether to plan it again).
    expect(offset).toHaveLength(1);
  });

  it('does the same for keyset paging', async () => {
    const repo = createDevicesRepository(database.db);
    const scope = { projectId: p.project.id };
    const first = await repo.page(scope, {}, 10, 0);
    for (let i = 0; i < 10; i++) await repo.page(scope, {}, 10, 0, first[4]!.id);
    const keyset = (await plans()).filter(
      (s) => /"devices"."id" < \$\d+/.test(s.statement) && /limit 10(?!\d)/.test(s.statement),
    );
    expect(keyset).toHaveLength(1);
    expect(keyset[0]!.generic).toBeGreaterThan(0);
    expect((await repo.page(scope, {}, 10, 0, first[4]!.id)).map((d) => d.id)).toEqual(
      (await repo.page(scope, {}, 15, 0)).slice(5, 15).map((d) => d.id),
    );
  });
});
