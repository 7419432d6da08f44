import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectCluster, type Cluster } from '../../src/cluster/cluster.ts';
import { createClusterSessions, type ClusterSessions } from '../../src/cluster/sessions.ts';
import { createRateLimiter, type BucketState, type RateLimiter } from '../../src/domain/delivery/rate-limiter.ts';
import { createSessionRegistry, type DeviceSession, type SessionRegistry } from '../../src/domain/delivery/sessions.ts';
import { ServiceUnavailable } from '../../src/errors.ts';
import { clusterSkip, NATS_TEST_URL, stopNodes, untilNodesSee } from '../helpers/cluster.ts';
import { until } from '../helpers/wait.ts';

/**
 * A device's message bucket follows it across nodes (docs/cluster.md §7): when a newer login on node b
 * replaces the session on node a, node a hands what is left of the device's bucket to node b, so logging in
 * elsewhere does not refill a device that spent its burst. Two "nodes" in this process on the real NATS.
 */
const skip = await clusterSkip();
const silent = { info() {}, warn() {}, error() {} };
const name = `bk${process.pid}${randomBytes(3).toString('hex')}`;
const RATE = 5;

interface Node {
  cluster: Cluster;
  sessions: SessionRegistry;
  directory: ClusterSessions;
  limiter: RateLimiter;
}
const nodes: Node[] = [];

async function node(id: string): Promise<Node> {
  const cluster = await connectCluster({ servers: NATS_TEST_URL, name, nodeId: id, logger: silent });
  const limiter = createRateLimiter({ projectRate: 0 });
  const directory = createClusterSessions({
    cluster,
    local: () => sessions,
    unavailable: (err) => new ServiceUnavailable(err.message),
    logger: silent,
    buckets: {
      export: (deviceId) => limiter.export(deviceId),
      adopt: (session, state) => limiter.adopt(session.deviceId, state as BucketState, RATE),
    },
  });
  const sessions = createSessionRegistry({ directory });
  const n = { cluster, sessions, directory, limiter };
  nodes.push(n);
  return n;
}

function session(deviceId: string): DeviceSession {
  return { deviceId, projectId: 'p1', transport: 'mqtt', send: async () => {}, close: () => {} };
}

let a: Node;
let b: Node;
beforeAll(async () => {
  if (skip) return;
  a = await node('a');
  b = await node('b');
  await untilNodesSee([a.cluster, b.cluster]);
}, 30_000);
afterAll(() => stopNodes(nodes));

describe.skipIf(skip)('a device bucket across nodes', () => {
  it('is handed to the node of the newer login, which then refuses what the device already spent', async () => {
    const id = randomBytes(12).toString('hex');
    a.sessions.attach(session(id));
    await a.directory.settled();
    // The device spends its burst (twice its rate) on node a.
    for (let i = 0; i < RATE * 2; i++) expect(a.limiter.admit('p1', id, RATE).ok).toBe(true);
    expect(a.limiter.admit('p1', id, RATE).ok).toBe(false);

    // A fresh node would admit it at once; after the hand-off node b refuses too.
    b.sessions.attach(session(id));
    await b.directory.settled();
    await until(() => a.sessions.get(id) === undefined, 'the older session on a to close', { timeout: 5_000 });
    await until(() => b.limiter.export(id) !== undefined, 'node b to adopt the bucket', { timeout: 5_000 });
    expect(b.limiter.admit('p1', id, RATE).ok).toBe(false);
  });
});
