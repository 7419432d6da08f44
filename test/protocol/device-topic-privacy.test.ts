import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProject, createTestApp, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';
import { startTestBroker, type TestBroker } from '../helpers/broker.ts';
import { addDeviceWithToken } from '../helpers/factories.ts';
import { connectDevice, grantedQos, nextOn, received } from '../helpers/mqtt.ts';

/**
 * A device sees only its own downstream traffic (device-protocol.md §3): inside the broker a device's
 * topics live under `$d/<device id>/`, and no filter a device may send reaches another device's.
 */
let ctx: TestContext;
let tb: TestBroker;
let p: ProjectFixture;
const clients: MqttClient[] = [];

beforeAll(async () => {
  ctx = await createTestApp();
  tb = await startTestBroker(ctx);
  p = await createProject(ctx);
});
afterAll(async () => {
  for (const c of clients) c.end(true);
  await tb?.close();
  await ctx?.close();
});

const device = (name: string) => addDeviceWithToken(p, { name });
async function connect(token: string, protocolVersion: 4 | 5) {
  return connectDevice(tb.url, { token, projectKey: p.project.project_key }, { protocolVersion }, clients);
}

describe.each([4, 5] as const)("MQTT %i: another device's namespace", (version) => {
  it('refuses $d/<other>/…, $d/+/… and # with a failed SUBACK, and delivers nothing of the other device', async () => {
    const a = await device('a');
    const b = await device('b');
    const ca = await connect(a.token, version);
    const cb = await connect(b.token, 4);
    const filters = [
      `$d/${b.id}/attributes/push`,
      `$d/+/attributes/push`,
      `$d/${b.id}/command/send/+`,
      `$d/${b.id}/#`,
      '$d/#',
      '#',
      '+/+/attributes/push',
    ];
    const codes = await grantedQos(ca, filters);
    expect(codes).toHaveLength(filters.length);
    expect(codes.filter((code) => code < 0x80)).toEqual([]);
    const seenByA = received(ca);

    // B receives what is pushed and sent to it.
    await cb.subscribeAsync(['attributes/push', 'command/send/+']);
    const pushed = nextOn(cb, 'attributes/push');
    expectOk(await p.api.post(`/api/v1/control/device/${b.id}/attributes`, { secret: 'for-b' }));
    expect(JSON.parse(await pushed)).toEqual({ secret: 'for-b' });
    const command = new Promise<string>((resolve) => cb.once('message', (topic) => resolve(topic)));
    const sent = expectOk(
      await p.api.post(`/api/v1/control/device/${b.id}/command`, { method: 'unlock', params: { code: 1234 } }),
    );
    expect(await command).toBe(`command/send/${sent.command_id}`);

    // A marker to A, routed after B's traffic: whatever A could have received has arrived by then.
    await ca.subscribeAsync('attributes/push');
    const marker = nextOn(ca, 'attributes/push');
    expectOk(await p.api.post(`/api/v1/control/device/${a.id}/attributes`, { mine: 1 }));
    await marker;
    expect(seenByA).toEqual(['attributes/push {"mine":1}']);
  });
});
