import { inArray } from 'drizzle-orm';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devices } from '../../src/db/schema/index.ts';
import { createProject, createTestApp, expectOk, type TestContext } from '../helpers/app.ts';
import { startTestBroker, type TestBroker } from '../helpers/broker.ts';

// Presence is written in batches (architecture.md §9: no write per message); only a read of online state writes
// pending connects first (device-protocol.md §11). The application-subscription fan-out is not such a read: a
// project with a viewer connected must not turn each device connect (a reconnect storm) into a presence write.
// The flush timer is not started in tests, so a row's online flag changes only when something forces a write.
let ctx: TestContext;
let tb: TestBroker;
const clients: MqttClient[] = [];
beforeAll(async () => {
  ctx = await createTestApp();
  tb = await startTestBroker(ctx);
});
afterAll(async () => {
  for (const c of clients) c.end(true);
  await tb?.close();
  await ctx?.close();
});

describe('a viewer does not turn device connects into presence writes', () => {
  it('connects and reports seen by a viewer stay batched; a read of the device still shows it online (and writes it)', async () => {
    const p = await createProject(ctx, 'viewer-presence');
    const view = expectOk(await p.api.post('/api/v1/view_key', {}));
    const devs: { id: string; token: string }[] = [];
    for (const name of ['pump', 'fan', 'valve']) {
      const d = expectOk(await p.api.post('/api/v1/device', { name }));
      const cert = expectOk(await p.api.get(`/api/v1/device/${d.id}/certificate`));
      devs.push({ id: d.id as string, token: cert.access_token as string });
    }
    const viewer = await mqtt.connectAsync(tb.url, {
      username: view.view_key,
      password: view.view_secret,
      reconnectPeriod: 0,
    });
    clients.push(viewer);
    await viewer.subscribeAsync([`${view.view_key}/+/online`, `${view.view_key}/+/attributes`]);
    const got: string[] = [];
    viewer.on('message', (topic) => got.push(topic.split('/').pop()!));

    for (const d of devs) {
      const c = await mqtt.connectAsync(tb.url, {
        username: d.token,
        password: p.project.project_key,
        reconnectPeriod: 0,
      });
      clients.push(c);
      c.publish('attributes', JSON.stringify({ temp: 20 }));
    }
    await expect.poll(() => got.filter((k) => k === 'online').length).toBe(3);
    await expect.poll(() => got.filter((k) => k === 'attributes').length).toBe(3);

    const stored = async () =>
      (
        await ctx.database.db
          .select({ id: devices.id, online: devices.online })
          .from(devices)
          .where(
            inArray(
              devices.id,
              devs.map((d) => d.id),
            ),
          )
      ).map((r) => r.online);
    expect(await stored()).toEqual([false, false, false]);

    // A read of online state is read-your-writes: it shows the connect, writing the pending batch first.
    expect(expectOk(await p.api.get(`/api/v1/device/${devs[0]!.id}`)).online).toBe(true);
    expect(await stored()).toEqual([true, true, true]);
  });
});
