import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProject, createTestApp, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';

/**
 * What the vendor's own clients read: its export tool sends `time.time() * 1000` (a fractional
 * millisecond) as series bounds, writes a series item's `name` into its identifier column, and reads
 * `device_code` from device list items to print QR codes.
 */
let ctx: TestContext;
let p: ProjectFixture;
beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx, 'vendor clients');
});
afterAll(() => ctx?.close());

describe("the vendor's clients", () => {
  it('get a series with fractional-millisecond bounds (floored), and items named by the identifier', async () => {
    const type = expectOk(await p.api.post('/api/v1/device_type', { name: 'Sensor' }));
    expectOk(
      await p.api.post(`/api/v1/device_type/${type.id}/attribute`, {
        identifier: 'temp',
        name: 'Temperature',
        data_type: 'number',
      }),
    );
    const d = expectOk(await p.api.post('/api/v1/device', { name: 'typed', type: type.id }));
    const token = expectOk(await p.api.get(`/api/v1/device/${d.id}/certificate`)).access_token as string;
    const identity = (await ctx.services.deviceAuth.authenticate(p.project.project_key, token))!;
    const ts = Date.now() - 60_000;
    await ctx.services.currentValues.report(identity, { temp: 21.5 }, ts);
    await ctx.services.ingest.flush();
    const start = `${ts - 1_000}.1091`;
    const end = `${Date.now()}.670`;
    const items = expectOk(
      await p.api.get(`/api/v1/device/${d.id}/attribute/temp/series?start_time=${start}&end_time=${end}`),
    );
    expect(items).toEqual([{ ts, timestamp: new Date(ts).toISOString(), name: 'temp', value: 21.5, type: 'number' }]);
  });

  it('find device_code on device list items, the same as on the device read', async () => {
    const d = expectOk(await p.api.post('/api/v1/device', { name: 'coded' }));
    const read = expectOk(await p.api.get(`/api/v1/device/${d.id}`));
    const list = expectOk(await p.api.get('/api/v1/devices?page_records=100'));
    const item = (list.items as Array<{ id: string; device_code: string }>).find((i) => i.id === d.id)!;
    expect(item.device_code).toMatch(/^\S+$/);
    expect(item.device_code).toBe(read.device_code);
  });
});
