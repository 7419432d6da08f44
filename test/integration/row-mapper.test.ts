import { eq, getTableColumns, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileRowMapper, withCompiledRows } from '../../src/db/row-mapper.ts';

/** Whether drizzle will map this prepared select's rows with a compiled mapper. */
const rowsCompiled = (prepared: unknown) =>
  typeof (prepared as { customResultMapper?: unknown }).customResultMapper === 'function';
import { deviceGroupMembers, devices, deviceTypes } from '../../src/db/schema/index.ts';
import { createProject, createTestApp, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';

let ctx: TestContext;
let p: ProjectFixture;

beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx, 'row mapper');
  const type = expectOk(await p.api.post('/api/v1/device_type', { name: 'meter' }));
  expectOk(await p.api.post('/api/v1/device', { name: 'typed', type: type.id, tags: { room: 'a' } }));
  expectOk(await p.api.post('/api/v1/device', { name: 'plain' }));
  expectOk(await p.api.post('/api/v1/device', { name: 'keyed', device_key: 'k-1', descr: 'with "quotes"' }));
});
afterAll(async () => ctx.close());

/** A flat select of every kind of field the hot reads use: columns of two tables, SQL with and without a decoder. */
const flatFields = () => ({
  ...getTableColumns(devices),
  typeName: deviceTypes.name,
  typeConnType: deviceTypes.connType,
  count: sql`(select count(*) from ${deviceGroupMembers} m where m.device_id = ${devices.id})`.mapWith(Number),
  raw: sql<string>`${devices.name} || '!'`,
  aliased: sql<number>`42`.as('answer'),
});

describe('compiled row mapper (src/db/row-mapper.ts)', () => {
  it('gives the objects drizzle gives, nulls, JSON, numbers and decoders included', async () => {
    const db = ctx.database.db;
    const build = () =>
      db
        .select(flatFields())
        .from(devices)
        .leftJoin(deviceTypes, eq(deviceTypes.id, devices.typeId))
        .where(eq(devices.projectId, sql.placeholder('projectId')))
        .orderBy(devices.id);
    const theirs = build().prepare('row_mapper_drizzle');
    const ours = withCompiledRows(build().prepare('row_mapper_compiled'));
    expect(rowsCompiled(theirs)).toBe(false);
    expect(rowsCompiled(ours)).toBe(true);
    // drizzle must really call the compiled mapper (a later drizzle might stop reading customResultMapper).
    const installed = (ours as unknown as { customResultMapper: (rows: unknown[][]) => unknown }).customResultMapper;
    let calls = 0;
    (ours as unknown as { customResultMapper: typeof installed }).customResultMapper = (rows) => {
      calls += 1;
      return installed(rows);
    };
    const args = { projectId: p.project.id };
    const [a, b] = [await theirs.execute(args), await ours.execute(args)];
    expect(calls).toBe(1);
    expect(a).toHaveLength(3);
    expect(b).toEqual(a);
    // The kinds the test means to cover are there.
    const typed = b.find((r) => r.name === 'typed')!;
    const plain = b.find((r) => r.name === 'plain')!;
    expect(typed.tags).toEqual({ room: 'a' });
    expect(typeof typed.createTime).toBe('number');
    expect(typed.typeName).toBe('meter');
    expect(plain.typeName).toBeNull();
    expect(plain.deviceKey).toBeNull();
    expect(typeof plain.count).toBe('number');
    expect(plain.raw).toBe('plain!');
    expect(plain.aliased).toBe(42);
    expect(Object.keys(b[0]!)).toEqual(Object.keys(a[0]!));
  });

  it('leaves nested selects to drizzle (a joined table as its own key may become null)', async () => {
    const db = ctx.database.db;
    const nested = withCompiledRows(
      db
        .select({ device: devices, type: deviceTypes })
        .from(devices)
        .leftJoin(deviceTypes, eq(deviceTypes.id, devices.typeId))
        .where(eq(devices.projectId, sql.placeholder('projectId')))
        .prepare('row_mapper_nested'),
    );
    expect(rowsCompiled(nested)).toBe(false);
    const rows = await nested.execute({ projectId: p.project.id });
    expect(rows.find((r) => r.device.name === 'plain')!.type).toBeNull();
  });

  it('refuses fields it does not know', () => {
    expect(compileRowMapper([{ path: ['a'], field: { unknown: true } }])).toBeUndefined();
    expect(compileRowMapper([{ path: ['a', 'b'], field: devices.id }])).toBeUndefined();
    const map = compileRowMapper([
      { path: ['id'], field: devices.id },
      { path: ['createTime'], field: devices.createTime },
    ])!;
    expect(
      map([
        ['x', '17'],
        [null, null],
      ]),
    ).toEqual([
      { id: 'x', createTime: 17 },
      { id: null, createTime: null },
    ]);
  });
});
