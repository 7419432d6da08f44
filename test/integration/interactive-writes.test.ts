import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowsOf } from '../../src/db/client.ts';
import { createProject, createTestApp, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';
import { addDeviceWithToken, attachSession } from '../helpers/factories.ts';

/**
 * Writes an HTTP caller waits for do not wait for a telemetry batch to fill (architecture.md §8): with a
 * batch delay far longer than the test may run, a push, a cloud attribute set and a custom-data downlink
 * still answer, stored; a device's report is what the delay holds.
 */
const HOUR = 3_600_000;
let ctx: TestContext;
let p: ProjectFixture;

beforeAll(async () => {
  ctx = await createTestApp({}, { settings: { ingestBatchDelayMs: HOUR } });
  p = await createProject(ctx);
});
afterAll(() => ctx?.close());

const call = async (method: 'POST' | 'PUT', url: string, payload: unknown) => {
  const res = await ctx.app.inject({
    method,
    url,
    headers: { 'project-key': p.project.project_key, 'content-type': 'application/json' },
    payload: JSON.stringify(payload),
  });
  return { status: res.statusCode, body: res.json(), headers: res.headers };
};

describe('interactive writes under a long batch delay', () => {
  it('answers a push, a cloud attribute set and a downlink at once, each stored', async () => {
    const d = await addDeviceWithToken(p, { name: 'interactive' });
    const link = attachSession(ctx.services, { deviceId: d.id, projectId: p.project.id }, { transport: 'mqtt' });
    expectOk(await call('POST', `/app/device/v1/${d.token}/attributes`, { relay: true }));
    expectOk(await call('PUT', `/app/device/v1/${d.token}/attributes`, { threshold: 30 }));
    expectOk(await call('POST', `/app/device/v1/${d.token}/data/stream/set`, { type: 'text', msg: 'on' }));
    link.disconnect();
    const values = rowsOf<{ identifier: string; attr_type: string }>(
      await ctx.database.db.execute(
        sql`select identifier, attr_type from attribute_values where device_id = ${d.id} order by identifier`,
      ),
    );
    expect(values).toEqual([
      { identifier: 'relay', attr_type: 'push' },
      { identifier: 'threshold', attr_type: 'cloud' },
    ]);
    const messages = rowsOf<{ direction: string }>(
      await ctx.database.db.execute(sql`select direction from data_messages where device_id = ${d.id}`),
    );
    expect(messages).toEqual([{ direction: 'down' }]);
  });

  it('holds a device report for its batch (the delay is real), and writes it on flush', async () => {
    const d = await addDeviceWithToken(p, { name: 'reporter' });
    const report = ctx.app.inject({
      method: 'POST',
      url: `/device/v1/${d.token}/attributes`,
      headers: { 'project-key': p.project.project_key, 'content-type': 'application/json' },
      payload: JSON.stringify({ temp: 20 }),
    });
    const early = await Promise.race([report.then(() => 'answered'), new Promise((r) => setTimeout(r, 300, 'held'))]);
    expect(early).toBe('held');
    await ctx.services.ingest.flush();
    expect((await report).json()).toMatchObject({ result: 1 });
  });
});
