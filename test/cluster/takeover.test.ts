import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { apiCall, clusterProject, clusterSuite } from '../helpers/cluster.ts';
import { connectDevice, nextOn } from '../helpers/mqtt.ts';
import { until } from '../helpers/wait.ts';

/**
 * The newest login wins across nodes (device-protocol.md §2, docs/cluster.md): a device logged in on node A
 * that logs in again on node B loses its connection to A, over MQTT and raw TCP, and stays online and
 * reachable from every node.
 */
let p: Awaited<ReturnType<typeof clusterProject>>;
const suite = await clusterSuite(2, {
  timeout: 240_000,
  setup: async (cluster) => {
    p = await clusterProject(cluster.nodes[0]!.http);
  },
});
const { skip, clients, sockets } = suite;

const nodeA = () => suite.cluster.nodes[0]!;
const nodeB = () => suite.cluster.nodes[1]!;
type Dev = Awaited<ReturnType<typeof p.device>>;

/** Pushes through `via` until it is delivered (the directory knows the login). */
const reachableFrom = (via: string, d: Dev) =>
  until(
    async () => (await p.call(via, 'POST', `/api/v1/control/device/${d.id}/attributes`, { ready: 1 })).result,
    `the device reachable from ${via}`,
    { timeout: 10_000, interval: 100 },
  );

async function tcpLogin(port: number, d: Dev) {
  const socket = net.connect(port, '127.0.0.1');
  sockets.push(socket);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const data: Buffer[] = [];
  socket.on('data', (b) => data.push(b));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(`${d.projectKey}&${d.accessToken}\n`);
  return { socket, closed, text: () => Buffer.concat(data).toString() };
}

const online = async (via: string, d: Dev) =>
  (await apiCall(via, 'GET', `/api/v1/device/${d.id}`, p.token)).online === true;

describe.skipIf(skip)('the newest login wins across nodes', () => {
  it('MQTT: a login on node B closes the connection on node A; the device stays online and reachable', async () => {
    const d = await p.device('mqtt-mover', nodeA().http);
    const login = { token: d.accessToken, projectKey: d.projectKey };
    const first = await connectDevice(nodeA().mqttUrl, login, {}, clients);
    await first.subscribeAsync('attributes/push', { qos: 1 });
    await reachableFrom(nodeB().http, d);
    const firstClosed = new Promise<void>((resolve) => first.once('close', () => resolve()));

    const second = await connectDevice(nodeB().mqttUrl, login, {}, clients);
    await second.subscribeAsync('attributes/push', { qos: 1 });
    await firstClosed;
    expect(second.connected).toBe(true);

    // Reachable from both nodes, at its new connection.
    for (const via of [nodeA().http, nodeB().http]) {
      const got = nextOn(second, 'attributes/push');
      await until(
        async () => (await p.call(via, 'POST', `/api/v1/control/device/${d.id}/attributes`, { at: via.length })).result,
        'the push delivered',
      );
      expect(JSON.parse(await got)).toEqual({ at: via.length });
    }
    // Online for both nodes, and still once the replaced connection's end has been handled.
    await new Promise((r) => setTimeout(r, 500));
    for (const via of [nodeA().http, nodeB().http]) {
      await until(() => online(via, d), `online on ${via}`, { timeout: 10_000, interval: 100 });
    }
  });

  it('raw TCP: a login on node B closes the link on node A; commands from node A reach the new link', async () => {
    const d = await p.device('tcp-mover', nodeA().http);
    const first = await tcpLogin(nodeA().tcpPort, d);
    await until(
      async () =>
        (
          await p.call(nodeB().http, 'POST', `/api/v1/control/device/${d.id}/data/stream/set?push_mode=tcp`, {
            type: 'text',
            msg: 'one',
          })
        ).result,
      'the first link reachable from node B',
      { timeout: 10_000, interval: 100 },
    );
    const second = await tcpLogin(nodeB().tcpPort, d);
    await first.closed;
    await until(
      async () =>
        (await p.call(nodeA().http, 'POST', `/api/v1/control/device/${d.id}/command`, { method: 'moved' })).result,
      'a command from node A sent',
      { timeout: 10_000, interval: 100 },
    );
    await until(() => second.text().includes('"method":"moved"'), 'the command on the new link');
    expect(first.text()).not.toContain('moved');
    for (const via of [nodeA().http, nodeB().http]) {
      await until(() => online(via, d), `online on ${via}`, { timeout: 10_000, interval: 100 });
    }
  });

  it('MQTT then TCP: the older MQTT session on node A closes when the device logs in over TCP on node B', async () => {
    const d = await p.device('switcher', nodeA().http);
    const first = await connectDevice(nodeA().mqttUrl, { token: d.accessToken, projectKey: d.projectKey }, {}, clients);
    await first.subscribeAsync('attributes/push', { qos: 1 });
    await reachableFrom(nodeB().http, d);
    const firstClosed = new Promise<void>((resolve) => first.once('close', () => resolve()));
    const link = await tcpLogin(nodeB().tcpPort, d);
    await firstClosed;
    expect(link.socket.destroyed).toBe(false);
  });
});
