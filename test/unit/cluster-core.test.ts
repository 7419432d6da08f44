import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { connectCluster, type Cluster } from '../../src/cluster/cluster.ts';
import { clusterSkip, NATS_TEST_URL, natsProxy, type NatsProxy } from '../helpers/cluster.ts';
import { until } from '../helpers/wait.ts';

/**
 * src/cluster/cluster.ts against the real NATS (docs/cluster.md §3): heartbeats, node loss, leases and the
 * reaper's notice, with a short lease. A proxy in front of NATS stands for a node cut off.
 */
const skip = await clusterSkip();
const silent = { info() {}, warn() {}, error() {} };
const name = `cc${process.pid}${randomBytes(3).toString('hex')}`;
const LEASE = 2_000;
const opened: Cluster[] = [];
const proxies: NatsProxy[] = [];
afterAll(async () => {
  for (const c of opened) await c.close().catch(() => {});
  for (const p of proxies) await p.close();
});

async function node(id: string, servers = NATS_TEST_URL) {
  const c = await connectCluster({ servers, name, nodeId: id, logger: silent, leaseMs: LEASE });
  opened.push(c);
  return c;
}

describe.skipIf(skip)('the cluster core', () => {
  it('sees another node alive, and lost within a lease and a beat after it stops beating', async () => {
    const proxy = await natsProxy();
    proxies.push(proxy);
    const a = await node('a1');
    const b = await node('b1', proxy.url);
    await until(() => a.isAlive('b1'), 'a to see b', { timeout: 5_000 });
    const lost: string[] = [];
    a.onNodeLost((n) => lost.push(n));
    const cutAt = Date.now();
    proxy.cut();
    await until(() => lost.includes('b1'), 'a to judge b lost', { timeout: 3 * LEASE });
    expect(Date.now() - cutAt).toBeGreaterThanOrEqual(LEASE - LEASE / 5);
    expect(a.isAlive('b1')).toBe(false);
    // b, back, re-asserts (its reconnect listeners run) and beats again.
    const rejoined: number[] = [];
    b.onReconnect(({ since }) => rejoined.push(since));
    proxy.restore();
    await until(() => rejoined.length > 0 && a.isAlive('b1'), 'b to rejoin', { timeout: 10_000 });
    expect(rejoined[0]).toBeLessThanOrEqual(Date.now());
  });

  it('hands a lease to one node at a time, and to another once its holder is cut off', async () => {
    const proxy = await natsProxy();
    proxies.push(proxy);
    const a = await node('a2', proxy.url);
    const lease = a.lease('job');
    await until(() => lease.held, 'a to take the lease', { timeout: 5_000 });
    const b = await node('b2');
    const onB = b.lease('job');
    await new Promise((r) => setTimeout(r, LEASE / 2));
    expect(onB.held).toBe(false);
    proxy.cut();
    // The cut-off holder stops acting before another node can have the lease.
    await until(() => !lease.held, 'the cut-off holder to let go', { timeout: LEASE });
    await until(() => onB.held, 'b to take the lease', { timeout: 3 * LEASE });
  });

  it('tells a node judged lost that it was reaped, and it re-asserts what it holds', async () => {
    const a = await node('a3');
    const b = await node('b3');
    const heard: number[] = [];
    b.onReconnect(({ since }) => heard.push(since));
    a.tellReaped('b3');
    await until(() => heard.length === 1, 'b to hear it was reaped', { timeout: 5_000 });
  });
});

describe.skipIf(skip)('NODE_ID', () => {
  it('refuses a second live node under the same id, and lets a node restart under its own', async () => {
    const first = await node('same');
    await expect(node('same')).rejects.toThrow(/NODE_ID same is in use by a live node/);
    await first.close();
    // Its key is gone or stands still: the restart is let in.
    const again = await node('same');
    expect(again.status).toBe('connected');
  });
});

describe.skipIf(skip)('a node stopping cleanly', () => {
  it('is known gone by the others at once, not a lease later', async () => {
    const a = await node('a5');
    const b = await node('b5');
    await until(() => a.isAlive('b5'), 'a to see b', { timeout: 5_000 });
    const lost: string[] = [];
    a.onNodeLost((n) => lost.push(n));
    await b.close();
    // Without the notice it would take a lease (2 s) and a scan.
    await until(() => lost.includes('b5'), 'a to hear b left', { timeout: LEASE * 0.75 });
  });
});

describe.skipIf(skip)('the reaper’s notice repeated', () => {
  it('costs at most one re-assert a lease', async () => {
    const a = await node('a6');
    const b = await node('b6');
    const heard: number[] = [];
    b.onReconnect(({ since }) => heard.push(since));
    for (let i = 0; i < 20; i++) a.tellReaped('b6');
    await until(() => heard.length >= 1, 'b to hear it', { timeout: 5_000 });
    await new Promise((r) => setTimeout(r, 300));
    expect(heard).toHaveLength(1);
  });
});
