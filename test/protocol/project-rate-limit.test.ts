import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.ts';
import { createProject, createTestApp, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';
import { addDeviceWithToken } from '../helpers/factories.ts';
import { connectDevice } from '../helpers/mqtt.ts';

/** Per-project device message rates (device-protocol.md §3): the broker without a global override. */
let ctx: TestContext;
let tb: TestBroker;
let url: string;
const clients: MqttClient[] = [];

beforeAll(async () => {
  ctx = await createTestApp({}, { settings: { deviceRateLimit: 50 } });
  tb = await startTestBroker(ctx);
  url = tb.url;
});
afterAll(async () => {
  for (const c of clients) c.end(true);
  await tb?.close();
  await ctx?.close();
});

const deviceOf = async (p: ProjectFixture) => (await addDeviceWithToken(p, { name: 'd' })).token;

async function connect(p: ProjectFixture, token: string) {
  const c = await connectDevice(url, { token, projectKey: p.project.project_key }, {}, clients);
  await c.subscribeAsync('attributes/response');
  return c;
}

/** Sends `n` reports at once and counts the answers: accepted and refused with 429. */
async function burst(c: MqttClient, n: number) {
  const answers: Array<{ result: number; errcode?: number }> = [];
  const onMessage = (_t: string, payload: Buffer) => answers.push(JSON.parse(payload.toString()));
  c.on('message', onMessage);
  for (let i = 0; i < n; i++) c.publish('attributes', JSON.stringify({ i }));
  await expect.poll(() => answers.length, { timeout: 10_000 }).toBe(n);
  c.off('message', onMessage);
  return { ok: answers.filter((a) => a.result === 1).length, limited: answers.filter((a) => a.errcode === 429).length };
}

describe('per-project device rate limits', () => {
  it("applies each project's own limit, and a reconnect does not refill the bucket", async () => {
    const slow = await createProject(ctx, 'slow');
    const fast = await createProject(ctx, 'fast');
    expectOk(await slow.api.put('/api/v1/project/settings', { device_rate_limit: 2 }));
    const slowToken = await deviceOf(slow);
    const s = await connect(slow, slowToken);
    const f = await connect(fast, await deviceOf(fast));

    // Burst = twice the limit: 4 of 8 pass for the slow project (plus what refills meanwhile), all 8 for the default.
    const slowBurst = await burst(s, 8);
    expect(slowBurst.ok).toBeGreaterThanOrEqual(4);
    expect(slowBurst.ok).toBeLessThan(8);
    expect(slowBurst.limited).toBe(8 - slowBurst.ok);
    expect(await burst(f, 8)).toEqual({ ok: 8, limited: 0 });

    // Reconnecting right away does not give a fresh bucket.
    await s.endAsync();
    const again = await connect(slow, slowToken);
    expect((await burst(again, 4)).limited).toBeGreaterThan(0);
  });
});
