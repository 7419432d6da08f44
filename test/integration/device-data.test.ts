import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeviceIdentity } from '../../src/domain/devices/device-identity.ts';
import {
  createProject,
  createTestApp,
  expectFailure,
  expectOk,
  type ProjectFixture,
  type TestContext,
} from '../helpers/app.ts';
import { addAuthenticatedDevice } from '../helpers/factories.ts';
import { openPrivateTestDatabase } from '../helpers/db.ts';

let ctx: TestContext;
let p: ProjectFixture;

// Its own database: retention runs here, and its effects are database-wide.
beforeAll(async () => {
  ctx = await createTestApp({}, { database: await openPrivateTestDatabase() });
  p = await createProject(ctx);
});
afterAll(() => ctx?.close());

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const newDevice = (body: Record<string, unknown> = { name: 'dev' }, fixture = p) =>
  addAuthenticatedDevice(ctx, fixture, body);

/** Reports `values` at the given times (one report each), through the ingest pipeline. */
async function reportAt(identity: DeviceIdentity, points: Array<[number, Record<string, unknown>]>) {
  await ctx.services.currentValues.reportSeries(
    identity,
    points.map(([ts, attributes]) => ({ ts, attributes })),
  );
}

describe('GET /api/v1/device/:id/attributes', () => {
  it('lists current values with their models; model.name falls back to the identifier', async () => {
    const type = expectOk(await p.api.post('/api/v1/device_type', { name: 'Sensor' }));
    expectOk(
      await p.api.post(`/api/v1/device_type/${type.id}/attribute`, {
        identifier: 'temp',
        name: 'Temperature',
        data_type: 'number',
        unit: '°C',
        data_options: { min: -40, max: 85 },
      }),
    );
    const d = await newDevice({ name: 'typed', type: type.id });
    await ctx.services.currentValues.report(d.identity, { temp: 21.5, note: 'ok' });
    await ctx.services.currentValues.setCloud({ projectId: p.project.id }, d.id, { target: 22 });
    const items = expectOk(await p.api.get(`/api/v1/device/${d.id}/attributes`));
    const by = Object.fromEntries(items.map((i: { identifier: string }) => [i.identifier, i]));
    expect(by.temp).toMatchObject({
      value: 21.5,
      attr_type: 'report',
      data_type: 'number',
      ts: expect.any(Number),
      model: { name: 'Temperature', data_type: 'number', data_options: { min: -40, max: 85 }, unit: '°C' },
    });
    expect(by.note).toMatchObject({
      value: 'ok',
      data_type: 'string',
      model: { name: 'note', data_type: 'string', data_options: {} },
    });
    expect(by.target).toMatchObject({ value: 22, attr_type: 'cloud', model: { name: 'target' } });
  });

  it('refuses a report whose value contradicts the attribute model, and stores none of it', async () => {
    const type = expectOk(await p.api.post('/api/v1/device_type', { name: 'Strict' }));
    expectOk(
      await p.api.post(`/api/v1/device_type/${type.id}/attribute`, {
        identifier: 'on',
        name: 'Switch',
        data_type: 'boolean',
      }),
    );
    const d = await newDevice({ name: 'strict', type: type.id });
    await expect(ctx.services.currentValues.report(d.identity, { on: 1, other: 2 })).rejects.toMatchObject({
      errcode: 400,
      message: expect.stringContaining('on'),
    });
    const res = await ctx.app.inject({
      method: 'POST',
      url: `/device/v1/${d.token}/attributes`,
      headers: { 'project-key': p.project.project_key },
      payload: { on: 'yes' },
    });
    expect(res.json()).toMatchObject({ result: 0, errcode: 400 });
    expect(await ctx.services.currentValues.get(p.project.id, d.id)).toEqual({});
    await ctx.services.currentValues.report(d.identity, { on: true, other: 2 });
    expect(await ctx.services.currentValues.get(p.project.id, d.id)).toEqual({ on: true, other: 2 });
    // Cloud attributes follow the model too.
    expectFailure(await p.api.put(`/api/v1/control/device/${d.id}/attributes`, { on: 'x' }), 400);
  });

  it("answers 404 for another project's device", async () => {
    const other = await createProject(ctx, 'other');
    const d = await newDevice({ name: 'theirs' }, other);
    expectFailure(await p.api.get(`/api/v1/device/${d.id}/attributes`), 404);
    expectFailure(await p.api.get(`/api/v1/device/${d.id}/attribute/t/series`), 404);
    expectFailure(await p.api.post(`/api/v1/device/${d.id}/attributes_remove`, { keys: ['t'] }), 404);
  });
});

describe('GET /api/v1/device/:id/attribute/:identifier/series', () => {
  it('pages newest first with ts and timestamp, within a range, and refuses ranges over 30 days', async () => {
    const d = await newDevice();
    const t0 = Date.now() - 10 * HOUR;
    await reportAt(
      d.identity,
      Array.from(
        { length: 25 },
        (_, i) => [t0 + i * 60_000, { t: i, s: `v${i}` }] as [number, Record<string, unknown>],
      ),
    );
    const first = expectOk(await p.api.get(`/api/v1/device/${d.id}/attribute/t/series`));
    expect(first).toHaveLength(20);
    expect(first[0]).toEqual({
      ts: t0 + 24 * 60_000,
      timestamp: new Date(t0 + 24 * 60_000).toISOString(),
      name: 't',
      value: 24,
      type: 'number',
    });
    expect(first.map((x: { value: number }) => x.value)).toEqual(Array.from({ length: 20 }, (_, i) => 24 - i));
    const second = expectOk(await p.api.get(`/api/v1/device/${d.id}/attribute/t/series?page=2`));
    expect(second.map((x: { value: number }) => x.value)).toEqual([4, 3, 2, 1, 0]);
    const ranged = expectOk(
      await p.api.get(
        `/api/v1/device/${d.id}/attribute/s/series?start_time=${t0 + 60_000}&end_time=${t0 + 3 * 60_000}&page_records=1000`,
      ),
    );
    expect(ranged.map((x: { value: string; type: string }) => [x.value, x.type])).toEqual([
      ['v3', 'string'],
      ['v2', 'string'],
      ['v1', 'string'],
    ]);
    expectFailure(await p.api.get(`/api/v1/device/${d.id}/attribute/t/series?start_time=0&end_time=${31 * DAY}`), 400);
    expectFailure(
      await p.api.get(`/api/v1/device/${d.id}/attribute/t/series?start_time=${t0}&end_time=${t0 - 1}`),
      400,
    );
    expectFailure(await p.api.get(`/api/v1/device/${d.id}/attribute/t/series?page_records=1001`), 400);
    expectFailure(await p.api.get(`/api/v1/device/${d.id}/attribute/t/series?page=0`), 400);
    expectFailure(await p.api.get(`/api/v1/device/${d.id}/attribute/bad-id/series`), 400);
    expect(expectOk(await p.api.get(`/api/v1/device/${d.id}/attribute/none/series`))).toEqual([]);
  });

  it('keeps objects, arrays and booleans as they were reported', async () => {
    const d = await newDevice();
    const ts = Date.now() - HOUR;
    await reportAt(d.identity, [[ts, { loc: { lat: 1.5, lng: [2, 3] }, on: false, list: [1, 'a'] }]]);
    const read = async (i: string) => expectOk(await p.api.get(`/api/v1/device/${d.id}/attribute/${i}/series`))[0];
    expect(await read('loc')).toMatchObject({ value: { lat: 1.5, lng: [2, 3] }, type: 'object' });
    expect(await read('on')).toMatchObject({ value: false, type: 'boolean' });
    expect(await read('list')).toMatchObject({ value: [1, 'a'], type: 'array' });
  });

  it('records reports, not pushes or cloud attributes', async () => {
    const d = await newDevice();
    await ctx.services.currentValues.report(d.identity, { level: 1 });
    await ctx.services.currentValues.setCloud({ projectId: p.project.id }, d.id, { level: 5 });
    const series = expectOk(await p.api.get(`/api/v1/device/${d.id}/attribute/level/series`));
    expect(series.map((x: { value: number }) => x.value)).toEqual([1]);
    expect(await ctx.services.currentValues.get(p.project.id, d.id)).toEqual({ level: 5 });
  });
});

describe('POST /api/v1/device/:id/attributes_remove', () => {
  it('removes current values and keeps history unless asked', async () => {
    const d = await newDevice();
    await ctx.services.currentValues.report(d.identity, { a: 1, b: 2, c: 3 });
    expectOk(await p.api.post(`/api/v1/device/${d.id}/attributes_remove`, { keys: ['a'] }));
    expect(await ctx.services.currentValues.get(p.project.id, d.id)).toEqual({ b: 2, c: 3 });
    expect(expectOk(await p.api.get(`/api/v1/device/${d.id}/attribute/a/series`))).toHaveLength(1);
    expectOk(await p.api.post(`/api/v1/device/${d.id}/attributes_remove`, { keys: ['b', 'nope'], history: true }));
    expect(await ctx.services.currentValues.get(p.project.id, d.id)).toEqual({ c: 3 });
    expect(expectOk(await p.api.get(`/api/v1/device/${d.id}/attribute/b/series`))).toEqual([]);
    expectFailure(await p.api.post(`/api/v1/device/${d.id}/attributes_remove`, { keys: [] }), 400);
    expectFailure(await p.api.post(`/api/v1/device/${d.id}/attributes_remove`, { keys: 'a' }), 400);
  });
});

describe('aggregation and CSV export', () => {
  it('aggregates numbers per interval for several identifiers', async () => {
    const d = await newDevice();
    const day = Math.floor((Date.now() - 2 * DAY) / DAY) * DAY;
    // 10:00–10:59: t = 1, 2, 3 and h = 10; 11:xx: t = 5 and a string (counted, not averaged).
    await reportAt(d.identity, [
      [day + 10 * HOUR + 1_000, { t: 1, h: 10 }],
      [day + 10 * HOUR + 2_000, { t: 2 }],
      [day + 10 * HOUR + 3_000, { t: 3 }],
      [day + 11 * HOUR, { t: 5 }],
      [day + 11 * HOUR + 1, { t: 'n/a' }],
    ]);
    const q = (fn: string) =>
      `/api/v1/device/${d.id}/attributes/aggregate?identifiers=t,h&fn=${fn}&interval=1h&start_time=${day}&end_time=${day + DAY}`;
    const values = async (fn: string) => {
      const info = expectOk(await p.api.get(q(fn)));
      return {
        t: info.series.t.map((b: { ts: number; value: number }) => [b.ts - day, b.value]),
        h: info.series.h.map((b: { value: number }) => b.value),
      };
    };
    expect(await values('avg')).toEqual({
      t: [
        [10 * HOUR, 2],
        [11 * HOUR, 5],
      ],
      h: [10],
    });
    expect(await values('min')).toEqual({
      t: [
        [10 * HOUR, 1],
        [11 * HOUR, 5],
      ],
      h: [10],
    });
    expect(await values('max')).toEqual({
      t: [
        [10 * HOUR, 3],
        [11 * HOUR, 5],
      ],
      h: [10],
    });
    expect(await values('sum')).toEqual({
      t: [
        [10 * HOUR, 6],
        [11 * HOUR, 5],
      ],
      h: [10],
    });
    expect(await values('count')).toEqual({
      t: [
        [10 * HOUR, 3],
        [11 * HOUR, 2],
      ],
      h: [1],
    });
    expect(await values('first')).toEqual({
      t: [
        [10 * HOUR, 1],
        [11 * HOUR, 5],
      ],
      h: [10],
    });
    expect(await values('last')).toEqual({
      t: [
        [10 * HOUR, 3],
        [11 * HOUR, 5],
      ],
      h: [10],
    });
    const daily = expectOk(
      await p.api.get(
        `/api/v1/device/${d.id}/attributes/aggregate?identifiers=t&interval=1d&start_time=${day}&end_time=${day + DAY}`,
      ),
    );
    expect(daily).toMatchObject({
      fn: 'avg',
      interval_ms: DAY,
      series: { t: [{ ts: day, value: (1 + 2 + 3 + 5) / 4 }] },
    });
    expectFailure(
      await p.api.get(
        `/api/v1/device/${d.id}/attributes/aggregate?identifiers=t&interval=1s&start_time=${day}&end_time=${day + DAY}`,
      ),
      400,
    );
    expectFailure(
      await p.api.get(`/api/v1/device/${d.id}/attributes/aggregate?identifiers=t&interval=1h&fn=median`),
      400,
    );
    expectFailure(await p.api.get(`/api/v1/device/${d.id}/attributes/aggregate?identifiers=&interval=1h`), 400);
    expectFailure(await p.api.get(`/api/v1/device/${d.id}/attributes/aggregate?identifiers=t&interval=soon`), 400);
  });

  it('exports a range as CSV, oldest first, quoting what needs it', async () => {
    const d = await newDevice();
    const t0 = Date.now() - 5 * HOUR;
    await reportAt(d.identity, [
      [t0, { a: 1, b: 'x,"y"' }],
      [t0 + 1, { a: 2, o: { k: 1 } }],
    ]);
    const res = await p.api.get(
      `/api/v1/device/${d.id}/attributes/export?identifiers=a,b,o&start_time=${t0}&end_time=${t0 + HOUR}`,
    );
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/csv/);
    const iso = (t: number) => new Date(t).toISOString();
    expect(res.body).toBe(
      'ts,timestamp,identifier,value\n' +
        `${t0},${iso(t0)},a,1\n${t0},${iso(t0)},b,"x,""y"""\n${t0 + 1},${iso(t0 + 1)},a,2\n${t0 + 1},${iso(t0 + 1)},o,"{""k"":1}"\n`,
    );
    expectFailure(
      await p.api.get(`/api/v1/device/${d.id}/attributes/export?identifiers=a&start_time=0&end_time=${40 * DAY}`),
      400,
    );
    expectFailure(await p.api.get(`/api/v1/device/missing/attributes/export?identifiers=a`), 404);
    expect(
      (await ctx.app.inject({ method: 'GET', url: `/api/v1/device/${d.id}/attributes/export?identifiers=a` }))
        .statusCode,
    ).toBe(401);
  });
});

describe('project settings', () => {
  it('reads and changes the rate limit and retention; null returns to the default', async () => {
    const fresh = await createProject(ctx, 'settings');
    expect(expectOk(await fresh.api.get('/api/v1/project/settings'))).toEqual({
      device_rate_limit: null,
      history_retention_days: null,
      customer_password_min_length: null,
      effective: { device_rate_limit: 50, history_retention_days: 365, customer_password_min_length: 8 },
    });
    expect(
      expectOk(await fresh.api.put('/api/v1/project/settings', { device_rate_limit: 2, history_retention_days: 7 })),
    ).toMatchObject({
      effective: { device_rate_limit: 2, history_retention_days: 7 },
    });
    const d = await newDevice({ name: 'r' }, fresh);
    await expect(
      ctx.services.currentValues.reportSeries(d.identity, [{ ts: Date.now() - 8 * DAY, attributes: { t: 1 } }]),
    ).rejects.toMatchObject({ errcode: 400 });
    await ctx.services.currentValues.reportSeries(d.identity, [{ ts: Date.now() - 6 * DAY, attributes: { t: 1 } }]);
    expect(expectOk(await fresh.api.put('/api/v1/project/settings', { history_retention_days: null }))).toMatchObject({
      history_retention_days: null,
      effective: { history_retention_days: 365 },
    });
    expectFailure(await fresh.api.put('/api/v1/project/settings', {}), 400);
    expectFailure(await fresh.api.put('/api/v1/project/settings', { device_rate_limit: 0 }), 400);
    expectFailure(await fresh.api.put('/api/v1/project/settings', { device_rate_limit: 'fast' }), 400);
    expectFailure(await fresh.api.put('/api/v1/project/settings', { history_retention_days: -1 }), 400);
    expectFailure(await fresh.api.put('/api/v1/project/settings', { other: 1 }), 400);
    // Another project's settings are untouched.
    expect(expectOk(await p.api.get('/api/v1/project/settings')).device_rate_limit).toBeNull();
  });
});

describe('retention', () => {
  it('trims a project that keeps less than the others', async () => {
    const short = await createProject(ctx, 'short');
    const d = await newDevice({ name: 'old' }, short);
    const keep = await newDevice({ name: 'keep' });
    const now = Date.now();
    await reportAt(d.identity, [
      [now - 20 * DAY, { t: 1 }],
      [now - HOUR, { t: 2 }],
    ]);
    await reportAt(keep.identity, [
      [now - 20 * DAY, { t: 1 }],
      [now - HOUR, { t: 2 }],
    ]);
    expectOk(await short.api.put('/api/v1/project/settings', { history_retention_days: 10 }));
    await ctx.services.retention.runOnce();
    const values = async (fx: ProjectFixture, id: string) =>
      expectOk(
        await fx.api.get(
          `/api/v1/device/${id}/attribute/t/series?start_time=${now - 25 * DAY}&end_time=${now - 5 * DAY + 1}`,
        ),
      ).length;
    expect(await values(short, d.id)).toBe(0);
    expect(await values(p, keep.id)).toBe(1);
  });

  it('deletes the history of a deleted device', async () => {
    const d = await newDevice({ name: 'gone' });
    await ctx.services.currentValues.report(d.identity, { t: 1 });
    expectOk(await p.api.delete(`/api/v1/device/${d.id}`));
    await expect
      .poll(async () => ctx.services.historyStore.series(p.project.id, d.id, 't', 0, Date.now() + 1, 10, 0))
      .toEqual([]);
  });
});
