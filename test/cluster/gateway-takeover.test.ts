import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { apiCall, clusterProjectSuite, gatewayWithSub, type ClusterNode } from '../helpers/cluster.ts';
import { nextOn } from '../helpers/mqtt.ts';
import { until } from '../helpers/wait.ts';

/**
 * The newest login wins for gateways too (device-protocol.md §8, docs/cluster.md §2): a gateway logged in on
 * node A that logs in again on node B loses its connection to A, and its sub-devices work through B —
 * commands from either node reach them, their reports are stored, they are online on every node, and the end
 * of the old connection on A never takes them offline afterwards.
 */
const { suite, project, nodes } = await clusterProjectSuite(2);
const { skip } = suite;
const nodeA = () => nodes()[0]!;
const nodeB = () => nodes()[1]!;

const TOPICS = ['gateway/command/send', 'gateway/connect/response', 'gateway/attributes/response'];

/** The gateway logged in on `node`, subscribed to its answers, with sub-device `s1` connected through it. */
async function gatewayOn(node: ClusterNode, gw: { accessToken: string; projectKey: string }) {
  const c = await suite.mqtt(node.mqttUrl, gw.accessToken, gw.projectKey);
  c.on('error', () => {});
  await c.subscribeAsync(TOPICS, { qos: 1 });
  const connected = nextOn(c, 'gateway/connect/response');
  c.publish('gateway/connect', JSON.stringify({ device: 's1' }));
  expect(JSON.parse(await connected)).toEqual({ result: 1, device: 's1' });
  return c;
}
/** A command sent to the sub-device through `via`, as the gateway `c` receives it. */
async function commandReaches(c: MqttClient, via: string, subId: string, method: string) {
  const got = nextOn(c, 'gateway/command/send', (m) => m.includes(method));
  await until(
    async () => (await project().call(via, 'POST', `/api/v1/control/device/${subId}/command`, { method })).result,
    `a command sent through ${via}`,
    { timeout: 10_000, interval: 100 },
  );
  expect(JSON.parse(await got)).toMatchObject({ device: 's1', command: { method } });
}
const subOnline = async (via: string, gwId: string) =>
  (await apiCall(via, 'GET', `/api/v1/device/${gwId}/sub_devices`, project().token)).items[0].online === true;

describe.skipIf(skip)('a gateway moving between nodes', () => {
  it('closes its session on node A when it logs in on node B; its sub-device keeps working through B', async () => {
    const { gw, sub } = await gatewayWithSub(project(), nodeA().http);

    const first = await gatewayOn(nodeA(), gw);
    await commandReaches(first, nodeB().http, sub.id, 'before');
    const firstClosed = new Promise<void>((resolve) => first.once('close', () => resolve()));

    const second = await gatewayOn(nodeB(), gw);
    await firstClosed;
    expect(second.connected).toBe(true);

    // Commands from both nodes reach the sub-device through B; its reports through B are stored.
    await commandReaches(second, nodeA().http, sub.id, 'from-a');
    await commandReaches(second, nodeB().http, sub.id, 'from-b');
    const stored = nextOn(second, 'gateway/attributes/response');
    second.publish('gateway/attributes', JSON.stringify({ s1: { temp: 21.5 } }), { qos: 1 });
    expect(JSON.parse(await stored)).toMatchObject({ result: 1 });
    await until(
      async () =>
        (
          (await apiCall(nodeA().http, 'GET', `/api/v1/device/${sub.id}/attributes`, project().token)) as Array<{
            identifier: string;
            value: unknown;
          }>
        ).some((a) => a.identifier === 'temp' && a.value === 21.5),
      'the report through B read on A',
      { timeout: 5_000, interval: 100 },
    );

    // Online on both nodes, and still so once the replaced connection's end on A has been written.
    await new Promise((r) => setTimeout(r, 2_000));
    for (const via of [nodeA().http, nodeB().http]) {
      expect(await subOnline(via, gw.id), `sub-device online on ${via}`).toBe(true);
      expect(
        (await apiCall(via, 'GET', `/api/v1/device/${gw.id}`, project().token)).online,
        `gateway online on ${via}`,
      ).toBe(true);
    }
    // Nothing of the new session went to the closed one.
    expect(first.connected).toBe(false);
  });
});
