import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectCluster, encodeJson, type Cluster } from '../../src/cluster/cluster.ts';
import { createClusterSessions, linkCommandReplies, type ClusterSessions } from '../../src/cluster/sessions.ts';
import { createSessionRegistry, type DeviceSession, type SessionRegistry } from '../../src/domain/delivery/sessions.ts';
import { ServiceUnavailable } from '../../src/errors.ts';
import { clusterSkip, NATS_TEST_URL } from '../helpers/cluster.ts';
import { until } from '../helpers/wait.ts';

/**
 * The session directory of src/cluster/sessions.ts against the real NATS (docs/cluster.md): two "nodes" in
 * this process, each with its own connection, registry and directory, under a cluster name of their own.
 */
const skip = await clusterSkip();
const silent = { info() {}, warn() {}, error() {} };

interface Node {
  cluster: Cluster;
  sessions: SessionRegistry;
  directory: ClusterSessions;
  epochs: [string, number][];
}

/** A session of this process: what it was sent and how it was closed. */
function fakeSession(deviceId: string, projectId = 'p1', failWith?: string) {
  const sent: { topic: string; payload: string }[] = [];
  const closed: { reason: string; how: string | undefined }[] = [];
  const session: DeviceSession = {
    deviceId,
    projectId,
    transport: 'mqtt',
    async send(topic, payload) {
      if (failWith) throw new Error(failWith);
      sent.push({ topic, payload: payload.toString() });
    },
    close(reason, how) {
      closed.push({ reason, how });
    },
  };
  return { session, sent, closed };
}

const name = `u${process.pid}${randomBytes(3).toString('hex')}`;
const clusters: Cluster[] = [];
const nodes: Node[] = [];

async function node(id: string, wrap: (c: Cluster) => Cluster = (c) => c): Promise<Node> {
  const raw = await connectCluster({ servers: NATS_TEST_URL, name, nodeId: id, logger: silent, requestTimeoutMs: 800 });
  clusters.push(raw);
  const cluster = wrap(raw);
  const epochs: [string, number][] = [];
  const directory = createClusterSessions({
    cluster,
    local: () => sessions,
    onEpoch: (deviceId, epoch) => epochs.push([deviceId, epoch]),
    unavailable: (err) => new ServiceUnavailable(err.message),
    logger: silent,
  });
  const sessions = createSessionRegistry({ directory });
  const n = { cluster, sessions, directory, epochs };
  nodes.push(n);
  return n;
}

const device = () => randomBytes(12).toString('hex');

let a: Node;
let b: Node;
/** Node b's reconnect listeners, called by hand (a NATS outage is not staged here). */
const reconnectB = new Set<(outage: { since: number }) => void>();

beforeAll(async () => {
  if (skip) return;
  a = await node('a');
  b = await node('b', (c) =>
    Object.assign(Object.create(c) as Cluster, {
      onReconnect: (l: (outage: { since: number }) => void) => {
        reconnectB.add(l);
        return () => reconnectB.delete(l);
      },
    }),
  );
  // Each sees the other alive (heartbeat scan).
  await until(() => a.cluster.isAlive('b') && b.cluster.isAlive('a'), 'the two nodes to see each other', {
    timeout: 15_000,
  });
}, 30_000);

afterAll(async () => {
  for (const n of nodes) n.directory.stop();
  for (const c of clusters) await c.close();
});

describe.skipIf(skip)('cluster session directory', () => {
  it('reaches a session held by another node, and forgets it when it ends', async () => {
    const id = device();
    const held = fakeSession(id, 'p7');
    b.sessions.attach(held.session);
    await b.directory.settled();
    expect(b.epochs).toContainEqual([id, b.directory.epochOf(held.session)]);

    const there = await a.sessions.locate(id);
    expect(there).toMatchObject({ deviceId: id, projectId: 'p7', transport: 'mqtt' });
    await there!.send('attributes/push', Buffer.from('{"t":1}'));
    expect(held.sent).toEqual([{ topic: 'attributes/push', payload: '{"t":1}' }]);
    // This node's own session comes first, without asking NATS.
    expect(await b.sessions.locate(id)).toBe(held.session);

    expect(b.sessions.detach(held.session)).toBe(true);
    await b.directory.settled();
    expect(await a.sessions.locate(id)).toBeUndefined();
    // The holder has no session any more: a send through an old proxy fails with why.
    await expect(there!.send('x', Buffer.from('1'))).rejects.toThrow('the device disconnected');
  });

  it('forgets an entry naming a node that no longer holds the device, once that node is asked', async () => {
    const id = device();
    const kv = await a.cluster.bucket('sessions');
    await kv.put(id, encodeJson({ node: 'b', projectId: 'p1', transport: 'mqtt' }));
    const stale = await a.sessions.locate(id);
    await expect(stale!.send('t', Buffer.from('x'))).rejects.toThrow('the device disconnected');
    await b.directory.settled();
    expect(await a.sessions.locate(id)).toBeUndefined();
  });

  it("passes on the holder's send failure", async () => {
    const id = device();
    b.sessions.attach(fakeSession(id, 'p1', 'socket closed').session);
    await b.directory.settled();
    const there = await a.sessions.locate(id);
    await expect(there!.send('t', Buffer.from('x'))).rejects.toThrow('socket closed');
  });

  it('lets the newest login win: the older session on another node closes as replaced', async () => {
    const id = device();
    const first = fakeSession(id);
    a.sessions.attach(first.session);
    await a.directory.settled();
    const second = fakeSession(id);
    b.sessions.attach(second.session);
    await b.directory.settled();
    await until(() => first.closed.length === 1, 'the older session closed', { timeout: 5_000 });
    expect(first.closed[0]!.how).toBe('replaced');
    expect(a.sessions.get(id)).toBeUndefined();
    expect(b.sessions.get(id)).toBe(second.session);
    expect(b.directory.epochOf(second.session)).toBeGreaterThan(a.directory.epochOf(first.session)!);
    // The older session ending later does not remove the newer login's entry.
    a.sessions.detach(first.session);
    await a.directory.settled();
    expect(await a.sessions.locate(id)).toMatchObject({ deviceId: id });
  });

  it('closes a session whose put completes after a newer claim (a lower epoch)', async () => {
    const id = device();
    // A newer login's claim (node b), seen by node a before its own put answers.
    b.cluster.publish(b.cluster.subject('sessions', 'claim'), { deviceId: id, node: 'b', epoch: 1e12 });
    await b.cluster.nc.flush();
    await a.cluster.nc.flush();
    const other = fakeSession(id);
    a.sessions.attach(other.session);
    await a.directory.settled();
    expect(other.closed).toEqual([{ reason: expect.stringContaining('node b'), how: 'replaced' }]);
    expect(a.sessions.get(id)).toBeUndefined();
  });

  it('counts an entry naming a node that is not alive as absent', async () => {
    const id = device();
    const kv = await a.cluster.bucket('sessions');
    await kv.put(id, encodeJson({ node: 'gone', projectId: 'p1', transport: 'tcp' }));
    expect(await a.sessions.locate(id)).toBeUndefined();
    await kv.put(id, encodeJson({ node: 'b', projectId: 'p1', transport: 'tcp' }));
    expect(await a.sessions.locate(id)).toMatchObject({ transport: 'tcp' });
  });

  it('kicks a device and a project on every node', async () => {
    const one = fakeSession(device(), 'pk');
    const two = fakeSession(device(), 'pk');
    b.sessions.attach(one.session);
    b.sessions.attach(two.session);
    await b.directory.settled();
    a.sessions.kick(one.session.deviceId, 'credentials revoked');
    await until(() => one.closed.length === 1, 'the kicked session closed', { timeout: 5_000 });
    expect(one.closed).toEqual([{ reason: 'credentials revoked', how: 'kicked' }]);
    await b.directory.settled();
    expect(await a.sessions.locate(one.session.deviceId)).toBeUndefined();
    a.sessions.kickProject('pk', 'project deleted');
    await until(() => two.closed.length === 1, 'the project session closed', { timeout: 5_000 });
    expect(two.closed[0]!.how).toBe('kicked');
    expect(b.sessions.get(two.session.deviceId)).toBeUndefined();
  });

  it('records its sessions again when NATS is back', async () => {
    const id = device();
    b.sessions.attach(fakeSession(id).session);
    await b.directory.settled();
    const kv = await a.cluster.bucket('sessions');
    await kv.delete(id);
    expect(await a.sessions.locate(id)).toBeUndefined();
    for (const l of reconnectB) l({ since: Date.now() });
    await b.directory.settled();
    expect(await a.sessions.locate(id)).toMatchObject({ deviceId: id });
  });

  it("answers the domain's 503 when NATS is away or the holder does not answer", async () => {
    const id = device();
    const down = Object.create(a.cluster, { status: { value: 'reconnecting' } }) as Cluster;
    const directory = createClusterSessions({
      cluster: down,
      local: () => a.sessions,
      unavailable: (err) => new ServiceUnavailable(err.message),
      logger: silent,
    });
    await expect(directory.find(id)).rejects.toBeInstanceOf(ServiceUnavailable);
    directory.stop();
    // An entry naming a live node that does not answer for the device (nobody listens on its subject).
    const kv = await a.cluster.bucket('sessions');
    const mute = Object.assign(Object.create(a.cluster) as Cluster, { isAlive: () => true });
    const asking = createClusterSessions({
      cluster: mute,
      local: () => a.sessions,
      unavailable: (err) => new ServiceUnavailable(err.message),
      logger: silent,
    });
    await kv.put(id, encodeJson({ node: 'silent', projectId: 'p1', transport: 'mqtt' }));
    const there = await asking.find(id);
    const err = await there!.send('t', Buffer.from('x')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceUnavailable);
    expect((err as ServiceUnavailable).errcode).toBe(503);
    asking.stop();
  });

  it('wakes synchronous callers of another node when a reply is stored', async () => {
    const wokenA: string[] = [];
    const wokenB: string[] = [];
    const la = linkCommandReplies(a.cluster, (id) => wokenA.push(id));
    const lb = linkCommandReplies(b.cluster, (id) => wokenB.push(id));
    // Both subscriptions registered with the server before the announcement.
    await a.cluster.nc.flush();
    await b.cluster.nc.flush();
    la.announce('cmd-1');
    await until(() => wokenB.length === 1, 'the wake on node b', { timeout: 5_000 });
    expect(wokenB).toEqual(['cmd-1']);
    expect(wokenA).toEqual([]);
    la.stop();
    lb.stop();
  });
});
