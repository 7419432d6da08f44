import type { MqttClient } from 'mqtt';
import { beforeAll, describe, expect, it } from 'vitest';
import { connectDevice } from '../helpers/mqtt.ts';
import { apiCall, clusterProject, clusterSuite, natsProxy } from '../helpers/cluster.ts';
import { until } from '../helpers/wait.ts';

/**
 * Online state across the nodes of a cluster (docs/cluster.md §3): a device connected to one node is online
 * in every node's API within about a second (device and devices_stat); a node killed has its devices
 * offline within 15 s (its heartbeat's lease, then the reaper); they are online again where they reconnect;
 * a node starting leaves the others' devices online; a device that logs in on another node stays online
 * when its older session's disconnect is written.
 */
const suite = await clusterSuite(2);
const { skip, clients } = suite;

type Project = Awaited<ReturnType<typeof clusterProject>>;
type Device = Awaited<ReturnType<Project['device']>>;

async function online(p: Project, via: string, id: string): Promise<boolean> {
  return ((await apiCall(via, 'GET', `/api/v1/device/${id}`, p.token)) as { online: boolean }).online;
}
async function onlineTotal(p: Project, via: string): Promise<number> {
  return ((await apiCall(via, 'GET', '/api/v1/devices_stat', p.token)) as { online_device_total: number })
    .online_device_total;
}
/** At most `timeout` ms, asking every 100 ms: each check is a request or two to a node's API. */
const within = (timeout: number) => ({ timeout, interval: 100 });
async function connect(url: string, d: Device): Promise<MqttClient> {
  const c = await connectDevice(url, { token: d.accessToken, projectKey: d.projectKey }, {}, clients);
  c.on('error', () => {});
  return c;
}

describe.skipIf(skip)('presence across the nodes of a cluster', () => {
  let p: Project;
  let onB: Device;
  let onA: Device;
  let moving: Device;

  beforeAll(async () => {
    p = await clusterProject(suite.cluster.nodes[0]!.http);
    [onB, onA, moving] = await Promise.all([p.device('on-b'), p.device('on-a'), p.device('moving')]);
  });

  it('shows a device connected to B online in A’s API within about a second (device and devices_stat)', async () => {
    const [a, b] = suite.cluster.nodes;
    expect(await onlineTotal(p, a!.http)).toBe(0); // counted now: A's cache holds it for 2 s
    const first = await connect(b!.mqttUrl, onB);
    // B writes its connects once a second.
    expect(await until(() => online(p, a!.http, onB.id), 'on-b online in A’s API', within(5_000))).toBeLessThan(2_500);
    await until(async () => (await onlineTotal(p, a!.http)) === 1, 'one device online in A’s count', within(3_000));
    // A's cached counts are dropped when B says it wrote a connect or disconnect: at once, not 2 s after
    // they were counted. Counted now (1), the device disconnects from B.
    expect(await onlineTotal(p, a!.http)).toBe(1);
    const counted = Date.now();
    first.end(true);
    await until(async () => !(await online(p, a!.http, onB.id)), 'on-b offline in A’s API', within(3_000));
    const recounted = Date.now();
    const total = await onlineTotal(p, a!.http);
    // (When B's write came late, A's cache had expired by itself: nothing to tell apart.)
    if (recounted - counted < 1_600) expect(total).toBe(0);
    await until(async () => (await onlineTotal(p, a!.http)) === 0, 'none online in A’s count', within(2_000));
    await connect(b!.mqttUrl, onB);
    await until(() => online(p, a!.http, onB.id), 'on-b online again in A’s API', within(3_000));
  });

  it('leaves the devices of the running nodes online when a third node starts', async () => {
    const [a, b] = suite.cluster.nodes;
    await connect(a!.mqttUrl, onA);
    await until(() => online(p, b!.http, onA.id), 'on-a online in B’s API', within(5_000));
    const c = await suite.cluster.addNode();
    // The new node's start (its reset of its own sessions) is done once it listens; its reaper sweep one beat later.
    await new Promise((r) => setTimeout(r, 3_000));
    for (const node of [a!, b!, c]) {
      expect(await online(p, node.http, onA.id)).toBe(true);
      expect(await online(p, node.http, onB.id)).toBe(true);
    }
    expect(await onlineTotal(p, c.http)).toBe(2);
  }, 120_000);

  it('keeps a device online that logged in on A and then on B, after A’s session ends', async () => {
    const [a, b, c] = suite.cluster.nodes;
    const first = await connect(a!.mqttUrl, moving);
    await until(() => online(p, c!.http, moving.id), 'moving online in C’s API', within(5_000));
    await connect(b!.mqttUrl, moving);
    // B's login is written (with its epoch) within a second; then A's older connection ends, whether the
    // newer login closed it already (docs/cluster.md: the newest wins across nodes) or it drops now.
    await new Promise((r) => setTimeout(r, 1_500));
    first.end(true);
    // A's disconnect, if it reports one, is written within a second: the device stays online, held by B.
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 500));
      for (const node of [a!, b!, c!]) expect(await online(p, node.http, moving.id)).toBe(true);
    }
  }, 60_000);

  it('shows the devices of a node killed with SIGKILL offline within 15 s, and online again where they reconnect', async () => {
    const [a, b, c] = suite.cluster.nodes;
    const killedAt = Date.now();
    await b!.stop('SIGKILL');
    await until(
      async () => !(await online(p, a!.http, onB.id)) && !(await online(p, a!.http, moving.id)),
      'B’s devices offline in A’s API',
      within(16_000),
    );
    expect(Date.now() - killedAt).toBeLessThanOrEqual(15_000);
    // Every node shows it, and the counts (the reaper recounts at once, the others are told).
    for (const node of [a!, c!]) {
      expect(await online(p, node.http, onB.id)).toBe(false);
      expect(await online(p, node.http, onA.id)).toBe(true);
    }
    await until(
      async () => (await onlineTotal(p, a!.http)) === 1 && (await onlineTotal(p, c!.http)) === 1,
      'one device online in A’s and C’s counts',
      within(3_000),
    );
    const read = (await apiCall(a!.http, 'GET', `/api/v1/device/${onB.id}`, p.token)) as {
      active: Record<string, number>;
    };
    expect(read.active.disconnect).toBeGreaterThanOrEqual(killedAt);
    // The device reconnects to A.
    await connect(a!.mqttUrl, onB);
    await until(
      async () => (await online(p, c!.http, onB.id)) && (await onlineTotal(p, c!.http)) === 2,
      'on-b online again through A, two in C’s count',
      within(3_000),
    );
  }, 60_000);

  it('has another node take the reaper lease when the holder is killed, and take its devices offline within 15 s', async () => {
    // A (the first node) holds the lease `presence-reaper`; C takes it over once A's lease lapses.
    const [a, , c] = suite.cluster.nodes;
    expect(await online(p, c!.http, onA.id)).toBe(true);
    const killedAt = Date.now();
    await a!.stop('SIGKILL');
    await until(
      async () => !(await online(p, c!.http, onA.id)) && !(await online(p, c!.http, onB.id)),
      'A’s devices offline in C’s API',
      within(16_000),
    );
    expect(Date.now() - killedAt).toBeLessThanOrEqual(15_000);
    await until(async () => (await onlineTotal(p, c!.http)) === 0, 'none online in C’s count', within(3_000));
  }, 60_000);

  it('writes online again the devices of a node cut off from NATS and reaped meanwhile, once it is back', async () => {
    // A node reaching NATS through a proxy that the test cuts and restores (docs/cluster.md §5).
    const c = suite.cluster.nodes[2]!;
    const proxy = await natsProxy();
    suite.afterClose(() => proxy.close());
    const d = await suite.cluster.addNode('cut', { NATS_URL: proxy.url });
    const dev = await p.device('on-the-cut-node', c.http);
    await connect(d.mqttUrl, dev);
    await until(() => online(p, c.http, dev.id), 'the cut node’s device online in C’s API', within(5_000));
    // A device changed (here: made) within a second before an outage counts as changed during it and is
    // disconnected when NATS returns (docs/cluster.md §5): the outage starts a little later.
    await new Promise((r) => setTimeout(r, 1_500));
    proxy.cut();
    // The reaper (C) sees the node lost and takes its device offline, though it is still connected there.
    await until(async () => !(await online(p, c.http, dev.id)), 'the cut node’s device reaped', within(20_000));
    proxy.restore();
    await until(
      async () => (await online(p, c.http, dev.id)) && (await onlineTotal(p, c.http)) === 1,
      'the cut node’s device online again once NATS is back',
      within(10_000),
    );
    expect(await online(p, d.http, dev.id)).toBe(true);
  }, 90_000);
});
