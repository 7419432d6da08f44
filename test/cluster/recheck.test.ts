import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectCluster, type Cluster } from '../../src/cluster/cluster.ts';
import { createClusterSessions, type ClusterSessions } from '../../src/cluster/sessions.ts';
import { createSessionRegistry, type DeviceSession, type SessionRegistry } from '../../src/domain/delivery/sessions.ts';
import { ServiceUnavailable } from '../../src/errors.ts';
import { clusterSkip, NATS_TEST_URL, stopNodes, untilNodesSee } from '../helpers/cluster.ts';
import { until } from '../helpers/wait.ts';

/**
 * After a NATS outage (docs/cluster.md §5) the kicks sent meanwhile are made up for on every node: the node
 * that comes back checks its own sessions and asks the others to check theirs, since what changed through its
 * API while it was cut off (a token reset) sent kicks that never left it. Two "nodes" in this process; node
 * a's return is staged by calling its reconnect listeners.
 */
const skip = await clusterSkip();
const silent = { info() {}, warn() {}, error() {} };
const name = `rc${process.pid}${randomBytes(3).toString('hex')}`;

interface Node {
  cluster: Cluster;
  sessions: SessionRegistry;
  directory: ClusterSessions;
  asked: Array<{ ids: string[]; since: number }>;
}
const nodes: Node[] = [];
const reconnectA = new Set<(o: { since: number }) => void>();
/** Devices whose credentials changed (what the database would answer). */
const changed = new Set<string>();

async function node(id: string, wrap: (c: Cluster) => Cluster = (c) => c): Promise<Node> {
  const cluster = wrap(await connectCluster({ servers: NATS_TEST_URL, name, nodeId: id, logger: silent }));
  const asked: Node['asked'] = [];
  const directory = createClusterSessions({
    cluster,
    local: () => sessions,
    unavailable: (err) => new ServiceUnavailable(err.message),
    logger: silent,
    changedSince: async (_projectId, ids, since) => {
      asked.push({ ids, since });
      return ids.filter((d) => changed.has(d));
    },
  });
  const sessions = createSessionRegistry({ directory });
  const n = { cluster, sessions, directory, asked };
  nodes.push(n);
  return n;
}

function session(deviceId: string) {
  const closed: string[] = [];
  const s: DeviceSession = {
    deviceId,
    projectId: 'p1',
    transport: 'mqtt',
    send: async () => {},
    close: (reason) => void closed.push(reason),
  };
  return { s, closed };
}

let a: Node;
let b: Node;
beforeAll(async () => {
  if (skip) return;
  a = await node('a', (c) =>
    Object.assign(Object.create(c) as Cluster, {
      onReconnect: (l: (o: { since: number }) => void) => {
        reconnectA.add(l);
        return () => reconnectA.delete(l);
      },
    }),
  );
  b = await node('b');
  await untilNodesSee([a.cluster, b.cluster]);
}, 30_000);
afterAll(() => stopNodes(nodes));

describe.skipIf(skip)('kicks missed during a NATS outage', () => {
  it('are made up for on the other nodes too when a node comes back', async () => {
    const revoked = randomBytes(12).toString('hex');
    const fine = randomBytes(12).toString('hex');
    const onB = session(revoked);
    const alsoOnB = session(fine);
    b.sessions.attach(onB.s);
    b.sessions.attach(alsoOnB.s);
    await b.directory.settled();
    // Node a was cut off; meanwhile a token reset through its API changed `revoked`.
    changed.add(revoked);
    const since = Date.now() - 30_000;
    for (const l of reconnectA) l({ since });
    await until(() => onB.closed.length > 0, 'node b to close the revoked session', { timeout: 5_000 });
    expect(onB.closed).toEqual(['changed while the cluster was unreachable']);
    expect(alsoOnB.closed).toEqual([]);
    // B asked about its own sessions, from when a lost NATS (less a second for clocks).
    expect(b.asked.at(-1)).toEqual({ ids: expect.arrayContaining([revoked, fine]), since: since - 1_000 });
  });
});

describe.skipIf(skip)('a session whose recording failed', () => {
  it('is recorded again while NATS stays connected, so other nodes can reach it', async () => {
    let failures = 1;
    const c = await node('c', (cl) =>
      Object.assign(Object.create(cl) as Cluster, {
        bucket: async (b: string, o?: { ttlMs?: number }) => {
          const kv = await cl.bucket(b, o);
          return Object.assign(Object.create(kv) as typeof kv, {
            put: (...args: Parameters<typeof kv.put>) =>
              failures-- > 0 ? Promise.reject(new Error('timeout')) : kv.put(...args),
          });
        },
      }),
    );
    const id = randomBytes(12).toString('hex');
    const held = session(id);
    c.sessions.attach(held.s);
    await c.directory.settled();
    expect(failures).toBeLessThan(0);
    expect(c.directory.epochOf(held.s)).toBeGreaterThan(0);
    await until(async () => (await b.sessions.locate(id)) !== undefined, 'node b to reach the session', {
      timeout: 5_000,
    });
  });
});
