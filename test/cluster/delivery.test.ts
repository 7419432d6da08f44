import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { apiCall, clusterProject, clusterSuite } from '../helpers/cluster.ts';
import { connectDevice, nextOn } from '../helpers/mqtt.ts';
import { until } from '../helpers/wait.ts';

/**
 * Delivery from anywhere (docs/cluster.md): a device connected to node B is reached from node A's API —
 * pushes, reads of what A stored, commands (also synchronous ones, whose reply arrives at B), data-stream
 * downlinks, token resets — over MQTT, raw TCP and through a gateway; an offline device answers as on one node.
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

/** The device logs in on node B over MQTT and subscribes to its downstream topics. */
async function onB(d: Dev, topics = ['attributes/push', 'attributes/get/response/+', 'command/send/+', 'data/+/set']) {
  const c = await connectDevice(nodeB().mqttUrl, { token: d.accessToken, projectKey: d.projectKey }, {}, clients);
  await c.subscribeAsync(topics, { qos: 1 });
  return c;
}

/** Node A reaches it (the directory learned of the login): polled with a push, which the device then gets. */
async function reachableFromA(d: Dev) {
  await until(
    async () => (await p.call(nodeA().http, 'POST', `/api/v1/control/device/${d.id}/attributes`, { ready: 1 })).result,
    'node A to reach the device',
    { timeout: 10_000, interval: 100 },
  );
}

/** A raw TCP device logged in on node B; `data` is every byte it received. */
async function tcpOnB(d: Dev) {
  const socket = net.connect(nodeB().tcpPort, '127.0.0.1');
  sockets.push(socket);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const data: Buffer[] = [];
  socket.on('data', (b) => data.push(b));
  socket.write(`${d.projectKey}&${d.accessToken}\n`);
  return { socket, text: () => Buffer.concat(data).toString() };
}

describe.skipIf(skip)('a device on node B, reached from node A', () => {
  it('gets an attribute push, and reads what node A stored for it', async () => {
    const d = await p.device('pushed', nodeA().http);
    const c = await onB(d);
    await reachableFromA(d);
    // Pushes of the reachability poll may still be arriving: the one awaited is the target.
    const pushed = nextOn(c, 'attributes/push', (m) => m.includes('"target"'));
    const res = await p.call(nodeA().http, 'POST', `/api/v1/control/device/${d.id}/attributes`, { target: 22 });
    expect(res).toMatchObject({ result: true });
    expect(JSON.parse(await pushed)).toEqual({ target: 22 });
    await apiCall(nodeA().http, 'PUT', `/api/v1/control/device/${d.id}/attributes`, p.token, { mode: 'eco' });
    const read = nextOn(c, 'attributes/get/response/1001');
    c.publish('attributes/get/1001', '{}');
    expect(JSON.parse(await read)).toEqual({ result: 1, attributes: { ready: 1, target: 22, mode: 'eco' } });
  });

  it('gets a command, and its reply reaches the log and a synchronous caller on node A', async () => {
    const d = await p.device('commanded', nodeA().http);
    const c = await onB(d);
    await reachableFromA(d);
    const got = nextOn(c, 'command/send/1');
    const sent = await apiCall(nodeA().http, 'POST', `/api/v1/control/device/${d.id}/command`, p.token, {
      method: 'reboot',
      params: { delay: 5 },
      id: 1,
    });
    expect(sent).toMatchObject({ command_id: 1, state: 'sent' });
    expect(JSON.parse(await got)).toEqual({ method: 'reboot', params: { delay: 5 }, id: 1 });
    c.publish('command/reply/1', JSON.stringify({ method: 'reboot', params: { ok: true }, id: 1 }));
    await until(
      async () =>
        (await apiCall(nodeA().http, 'GET', `/api/v1/device/${d.id}/commands`, p.token)).items[0].state === 'replied',
      'the reply in the log on node A',
    );

    // Synchronous: the device answers at node B; node A's waiting caller wakes at once (not at its wait's end).
    c.on('message', (topic, payload) => {
      if (!topic.startsWith('command/send/')) return;
      const body = JSON.parse(payload.toString()) as { id: number; method: string };
      c.publish(`command/reply/${body.id}`, JSON.stringify({ method: body.method, params: { t: 21.5 }, id: body.id }));
    });
    const started = Date.now();
    const res = await fetch(`${nodeA().http}/app/device/v1/${d.accessToken}/command/sync/send`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'project-key': d.projectKey },
      body: JSON.stringify({ method: 'measure', params: {}, timeout: 30, wait: 20 }),
    }).then((r) => r.json() as Promise<{ result: boolean; info: Record<string, unknown> }>);
    expect(res).toMatchObject({
      result: true,
      info: { method: 'measure', state: 'replied', reply: { method: 'measure', params: { t: 21.5 } } },
    });
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('gets a custom data downlink', async () => {
    const d = await p.device('streamed', nodeA().http);
    const c = await onB(d);
    await reachableFromA(d);
    const got = new Promise<Buffer>((resolve) =>
      c.on('message', (topic, payload) => topic === 'data/raw/set' && resolve(payload)),
    );
    const res = await p.call(nodeA().http, 'POST', `/api/v1/control/device/${d.id}/data/raw/set?push_mode=mqtt`, {
      type: 'hex',
      msg: '01 02 ff',
    });
    expect(res).toMatchObject({ result: true });
    expect((await got).toString('hex')).toBe('0102ff');
    // Not connected over TCP: 422, as on one node.
    const tcp = await p.call(nodeA().http, 'POST', `/api/v1/control/device/${d.id}/data/stream/set?push_mode=tcp`, {
      type: 'hex',
      msg: '01',
    });
    expect(tcp).toMatchObject({ result: false, errcode: 422 });
  });

  it('is disconnected by a token reset on node A', async () => {
    const d = await p.device('reset', nodeA().http);
    const c = await onB(d);
    await reachableFromA(d);
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    await apiCall(nodeA().http, 'POST', `/api/v1/device/${d.id}/certificate/reset`, p.token);
    await closed;
    // Gone from every node: a push answers offline.
    await until(
      async () =>
        (await p.call(nodeA().http, 'POST', `/api/v1/control/device/${d.id}/attributes`, { x: 1 })).errcode === 422,
      'the device offline for node A',
    );
  });

  it('over raw TCP gets a command and a stream downlink', async () => {
    const d = await p.device('tcp', nodeA().http);
    const link = await tcpOnB(d);
    const downlink = () =>
      p.call(nodeA().http, 'POST', `/api/v1/control/device/${d.id}/data/stream/set?push_mode=tcp`, {
        type: 'text',
        msg: 'hello',
      });
    await until(async () => (await downlink()).result, 'node A to reach the TCP device', { timeout: 10_000 });
    await until(() => link.text().includes('hello'), 'the downlink bytes');
    const sent = await apiCall(nodeA().http, 'POST', `/api/v1/control/device/${d.id}/command`, p.token, {
      method: 'beep',
      params: { n: 2 },
    });
    await until(
      () => link.text().includes(JSON.stringify({ method: 'beep', params: { n: 2 }, id: sent.command_id })),
      'the command bytes on the TCP link',
    );
  });

  it('as a gateway sub-device gets a command through its gateway, and shows online on node A', async () => {
    const gwType = await apiCall(nodeA().http, 'POST', '/api/v1/device_type', p.token, { name: 'gw', conn_type: '3' });
    const subType = await apiCall(nodeA().http, 'POST', '/api/v1/device_type', p.token, {
      name: 'sub',
      conn_type: '2',
    });
    const gw = await p.device('gateway', nodeA().http, { type: gwType.id });
    const sub = await p.device('sub', nodeA().http, { type: subType.id });
    await apiCall(nodeA().http, 'POST', `/api/v1/device/${gw.id}/sub_devices`, p.token, {
      device: sub.id,
      address: 's1',
    });
    const c = await onB(gw, ['gateway/command/send', 'gateway/connect/response']);
    const connected = nextOn(c, 'gateway/connect/response');
    c.publish('gateway/connect', JSON.stringify({ device: 's1' }));
    expect(JSON.parse(await connected)).toEqual({ result: 1, device: 's1' });
    const subOnline = async () =>
      (await apiCall(nodeA().http, 'GET', `/api/v1/device/${gw.id}/sub_devices`, p.token)).items[0].online === true;
    await until(subOnline, 'the sub-device online in node A’s list', { timeout: 10_000 });
    const got = nextOn(c, 'gateway/command/send');
    const sent = await apiCall(nodeA().http, 'POST', `/api/v1/control/device/${sub.id}/command`, p.token, {
      method: 'relay',
      params: { on: true },
    });
    expect(JSON.parse(await got)).toEqual({
      device: 's1',
      command: { method: 'relay', params: { on: true }, id: sent.command_id },
    });
  });

  it('offline: 422 from node A, and a command with a ttl waits for its login on node B', async () => {
    const d = await p.device('offline', nodeA().http);
    const push = await p.call(nodeA().http, 'POST', `/api/v1/control/device/${d.id}/attributes`, { x: 1 });
    expect(push).toMatchObject({ result: false, errcode: 422, message: 'Device is offline' });
    const now = await p.call(nodeA().http, 'POST', `/api/v1/control/device/${d.id}/command`, { method: 'now' });
    expect(now).toMatchObject({ result: false, errcode: 422, message: 'Device is offline' });
    const queued = await apiCall(nodeA().http, 'POST', `/api/v1/control/device/${d.id}/command`, p.token, {
      method: 'later',
      ttl: 60,
    });
    expect(queued).toMatchObject({ state: 'queued' });
    const c = await connectDevice(nodeB().mqttUrl, { token: d.accessToken, projectKey: d.projectKey }, {}, clients);
    const got = nextOn(c, `command/send/${queued.command_id}`);
    await c.subscribeAsync('command/send/+', { qos: 1 });
    expect(JSON.parse(await got)).toMatchObject({ method: 'later', id: queued.command_id });
    await until(
      async () =>
        (await apiCall(nodeA().http, 'GET', `/api/v1/device/${d.id}/commands`, p.token)).items.some(
          (i: { method: string; state: string }) => i.method === 'later' && i.state === 'sent',
        ),
      'the queued command sent',
    );
  });

  // Last: it kills node B.
  it('answers 503 while the node holding the device does not answer, then 422 once that node counts as lost', async () => {
    const d = await p.device('orphan', nodeA().http);
    await onB(d);
    await reachableFromA(d);
    await nodeB().stop('SIGKILL');
    const started = Date.now();
    const res = await p.call(nodeA().http, 'POST', `/api/v1/control/device/${d.id}/attributes`, { x: 1 });
    expect(res).toMatchObject({ status: 503, result: false, errcode: 503 });
    expect(res.message).toMatch(/did not answer/);
    expect(Date.now() - started).toBeLessThan(9_000);
    // Its heartbeat over, the lost node's sessions count as absent: offline, as on one node.
    await until(
      async () =>
        (await p.call(nodeA().http, 'POST', `/api/v1/control/device/${d.id}/attributes`, { x: 2 })).errcode === 422,
      'the device offline once node B is lost',
      { timeout: 30_000, interval: 500 },
    );
  }, 60_000);
});
