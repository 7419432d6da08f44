import { randomBytes } from 'node:crypto';
import { connect as natsConnect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BROADCAST_EVENTS, connectBusPublisher, createClusterBus, type LiveSink } from '../../src/cluster/bus.ts';
import { connectCluster, type Cluster } from '../../src/cluster/cluster.ts';
import { createEventBus, type DomainEvents, type EventBus } from '../../src/domain/events/event-bus.ts';
import type { LiveEventName } from '../../src/domain/events/live-events.ts';
import { NATS_TEST_URL, natsProxy, natsReachable } from '../helpers/cluster.ts';
import { until } from '../helpers/wait.ts';

const up = await natsReachable(NATS_TEST_URL);
if (!up && process.env.REQUIRE_CLUSTER_TESTS === '1')
  throw new Error(`REQUIRE_CLUSTER_TESTS=1 but no NATS at ${NATS_TEST_URL}`);

const silent = { info() {}, warn() {}, error() {} };
const name = `u${process.pid}${randomBytes(3).toString('hex')}`;
const P = 'aaaaaaaaaaaaaaaaaaaaaaaa';
const Q = 'bbbbbbbbbbbbbbbbbbbbbbbb';

interface Node {
  cluster: Cluster;
  bus: EventBus;
  bridge: ReturnType<typeof createClusterBus>;
  remote: Array<{ name: LiveEventName; event: DomainEvents[LiveEventName] }>;
  watched: Set<string>;
}
const nodes: Node[] = [];
let raw: NatsConnection | undefined;

async function node(id: string, servers = NATS_TEST_URL): Promise<Node> {
  const cluster = await connectCluster({ servers, name, nodeId: id, logger: silent, leaseMs: 2_000 });
  const bus = createEventBus();
  const remote: Node['remote'] = [];
  const watched = new Set<string>();
  const sink: LiveSink = {
    deliverRemote: (n, event) => remote.push({ name: n, event }),
    watchedProjects: () => [...watched],
  };
  const bridge = createClusterBus({ cluster, bus, logger: silent, live: sink });
  await bridge.ready;
  const n = { cluster, bus, bridge, remote, watched };
  nodes.push(n);
  return n;
}
const interest = (n: Node, projectId: string, on: boolean) => {
  if (on) n.watched.add(projectId);
  else n.watched.delete(projectId);
  n.bridge.interest(projectId, on);
};

let a: Node;
let b: Node;
beforeAll(async () => {
  if (!up) return;
  a = await node('a');
  b = await node('b');
  raw = await natsConnect({ servers: NATS_TEST_URL });
  await until(() => a.cluster.isAlive('b') && b.cluster.isAlive('a'), 'both nodes alive', { timeout: 5_000 });
});
afterAll(async () => {
  for (const n of nodes) {
    await n.bridge.close();
    await n.cluster.close();
  }
  await raw?.close();
});

describe.skipIf(!up)('cluster event bridge', () => {
  it('repeats broadcast events on the other nodes, marked remote, never back on their origin', async () => {
    const heardA: boolean[] = [];
    const heardB: boolean[] = [];
    const payloadsB: unknown[] = [];
    const durableB: string[] = [];
    const offA = a.bus.on('project.deleted', (_e, meta) => heardA.push(meta.remote));
    const offB = b.bus.on('project.deleted', (e, meta) => {
      payloadsB.push(e);
      heardB.push(meta.remote);
    });
    const offDurable = b.bus.on('project.deleted', (e) => durableB.push(e.projectId), { localOnly: true });
    a.bus.emit('project.deleted', { projectId: P });
    await until(() => heardB.length === 1, 'B hears it', { timeout: 1_000 });
    await new Promise((r) => setTimeout(r, 200));
    expect(heardA).toEqual([false]);
    expect(heardB).toEqual([true]);
    expect(payloadsB).toEqual([{ projectId: P }]);
    expect(durableB).toEqual([]);
    offA();
    offB();
    offDurable();
  });

  it('broadcasts every event of BROADCAST_EVENTS, and ignores malformed or unknown messages', async () => {
    const seen: string[] = [];
    const offs = BROADCAST_EVENTS.map((n) => b.bus.on(n, (_e, meta) => meta.remote && seen.push(n)));
    offs.push(b.bus.on('device.data', () => seen.push('device.data')));
    for (const n of BROADCAST_EVENTS) a.bus.emit(n, { projectId: P, deviceId: 'd', typeId: 't' } as never);
    raw!.publish(`${name}.bus.device.data`, JSON.stringify({ o: 'x', n: 'device.data', e: { projectId: P } }));
    raw!.publish(`${name}.bus.project.deleted`, 'not json');
    raw!.publish(`${name}.bus.project.deleted`, JSON.stringify({ o: 'x', n: 'project.deleted', e: 'nope' }));
    await until(() => seen.length >= BROADCAST_EVENTS.length, 'every broadcast event on B', { timeout: 1_000 });
    await new Promise((r) => setTimeout(r, 200));
    expect(seen).toEqual(BROADCAST_EVENTS);
    for (const off of offs) off();
  });

  it('sends a live event only while another live node watches its project', async () => {
    const sent: string[] = [];
    const sub = raw!.subscribe(`${name}.live.>`, { callback: (_err, msg) => void sent.push(msg.subject) });
    const report = (projectId: string) =>
      a.bus.emit('device.attributes', { projectId, deviceId: 'd1', attributes: { t: 1 }, attrType: 'report', ts: 1 });

    report(P);
    interest(b, P, true);
    await until(() => a.bridge.othersWatch(P), 'A sees B watch P', { timeout: 1_000 });
    expect(a.bridge.othersWatch(Q)).toBe(false);
    report(P);
    report(Q);
    const payload = Buffer.from([0, 1, 254, 255]);
    a.bus.emit('device.data', {
      projectId: P,
      deviceId: 'd1',
      identifier: 'raw',
      direction: 'up',
      transport: 'mqtt',
      payload,
      ts: 2,
    });
    await until(() => b.remote.length === 2, 'B gets both', { timeout: 1_000 });
    expect(b.remote[0]).toEqual({
      name: 'device.attributes',
      event: { projectId: P, deviceId: 'd1', attributes: { t: 1 }, attrType: 'report', ts: 1 },
    });
    expect(b.remote[1]!.name).toBe('device.data');
    expect(Buffer.isBuffer((b.remote[1]!.event as DomainEvents['device.data']).payload)).toBe(true);
    expect((b.remote[1]!.event as DomainEvents['device.data']).payload.equals(payload)).toBe(true);
    // B's own live events do not come back to B; A has no interest, so nothing goes out for them.
    b.bus.emit('device.online', { projectId: P, deviceId: 'd2', transport: 'mqtt', ts: 3 });

    interest(b, P, false);
    await until(() => !a.bridge.othersWatch(P), 'A sees B stop watching P', { timeout: 1_000 });
    report(P);
    await new Promise((r) => setTimeout(r, 200));
    await raw!.flush();
    sub.unsubscribe();
    expect(sent).toEqual([`${name}.live.${P}`, `${name}.live.${P}`]);
    expect(b.remote).toHaveLength(2);
    expect(a.remote).toHaveLength(0);
  });

  it('ignores the interest of a node that is not alive', async () => {
    const kv = await a.cluster.bucket('watch');
    await kv.put(`${Q}.ghost`, new Uint8Array());
    await new Promise((r) => setTimeout(r, 200));
    expect(a.bridge.othersWatch(Q)).toBe(false);
    await kv.delete(`${Q}.ghost`);
  });

  it('drops live messages of another project than their subject names', async () => {
    interest(b, P, true);
    // B subscribed before announcing: once A sees the announcement, the subscription is in place.
    await until(() => a.bridge.othersWatch(P), 'A sees B watch P', { timeout: 1_000 });
    const before = b.remote.length;
    raw!.publish(
      `${name}.live.${P}`,
      JSON.stringify({ o: 'x', n: 'device.online', e: { projectId: Q, deviceId: 'd', transport: 'mqtt', ts: 1 } }),
    );
    raw!.publish(
      `${name}.live.${P}`,
      JSON.stringify({ o: 'x', n: 'device.updated', e: { projectId: P, deviceId: 'd' } }),
    );
    raw!.publish(
      `${name}.live.${P}`,
      JSON.stringify({ o: 'x', n: 'device.online', e: { projectId: P, deviceId: 'd', transport: 'mqtt', ts: 1 } }),
    );
    await until(() => b.remote.length > before, 'the good one', { timeout: 1_000 });
    await new Promise((r) => setTimeout(r, 100));
    expect(b.remote.slice(before).map((r) => [r.name, r.event.projectId])).toEqual([['device.online', P]]);
    interest(b, P, false);
  });

  it('lets a process that is no node (the CLI) tell the nodes', async () => {
    const heard: boolean[] = [];
    a.bus.on('project.deleted', (e, meta) => e.projectId === Q && heard.push(meta.remote));
    const cliBus = createEventBus();
    const publisher = await connectBusPublisher({ servers: NATS_TEST_URL, name, bus: cliBus });
    cliBus.emit('project.deleted', { projectId: Q });
    await publisher.close();
    await until(() => heard.length === 1, 'A hears the CLI', { timeout: 1_000 });
    expect(heard).toEqual([true]);
    await expect(connectBusPublisher({ servers: 'nats://127.0.0.1:1', name, bus: cliBus })).rejects.toThrow(
      /cannot reach NATS at nats:\/\/127\.0\.0\.1:1/,
    );
  });

  it('follows interest again after a NATS outage, and announces its own again', async () => {
    const proxy = await natsProxy();
    const c = await node('c', proxy.url);
    nodes.pop();
    try {
      await until(() => a.cluster.isAlive('c') && c.cluster.isAlive('a'), 'C alive', { timeout: 5_000 });
      interest(c, P, true);
      await until(() => a.bridge.othersWatch(P), 'A sees C watch P', { timeout: 1_000 });
      proxy.cut();
      await until(() => c.cluster.status === 'reconnecting', 'C cut off', { timeout: 5_000 });
      // While C is away, its key goes (as when another node found it lost) and A starts watching Q.
      const kv = await a.cluster.bucket('watch');
      await kv.delete(`${P}.c`);
      interest(a, Q, true);
      proxy.restore();
      await until(() => c.cluster.status === 'connected', 'C back', { timeout: 10_000 });
      await until(() => c.bridge.othersWatch(Q) && a.bridge.othersWatch(P), 'interest known both ways again', {
        timeout: 5_000,
      });
      const before = c.remote.length;
      a.bus.emit('device.online', { projectId: P, deviceId: 'd9', transport: 'mqtt', ts: 9 });
      await until(() => c.remote.length > before, 'C gets P again', { timeout: 1_000 });
      interest(a, Q, false);
      interest(c, P, false);
    } finally {
      await c.bridge.close();
      await c.cluster.close();
      await proxy.close();
    }
  });

  it('takes back its interest when it closes (a node stopping)', async () => {
    const d = await node('d');
    nodes.pop();
    try {
      await until(() => a.cluster.isAlive('d'), 'D alive', { timeout: 5_000 });
      interest(d, P, true);
      await until(() => a.bridge.othersWatch(P), 'A sees D watch P', { timeout: 1_000 });
      await d.bridge.close();
      // D is still alive (its heartbeat runs): only its withdrawn key stops A from sending.
      await until(() => !a.bridge.othersWatch(P), 'A sees D leave P', { timeout: 1_000 });
    } finally {
      await d.cluster.close();
    }
  });
});
