import { describe, expect, it, vi } from 'vitest';
import type { PresenceChange, PresenceRow } from '../../src/db/repositories/presence.repository.ts';
import { attachDevice } from '../../mqtt-broker/core/device-session.ts';
import { createClusterPresence } from '../../src/cluster/presence.ts';
import { createSessionRegistry } from '../../src/domain/delivery/sessions.ts';
import { createPresenceService } from '../../src/domain/devices/presence.service.ts';
import { createEventBus, type DomainEvents } from '../../src/domain/events/event-bus.ts';

const device = { deviceId: 'd1', projectId: 'p1', name: 'd', typeId: null, connType: '1', disabled: false };

function setup(node: string | undefined, holds?: (id: string) => boolean) {
  const bus = createEventBus();
  const written: { rows: PresenceRow[]; node: string | undefined; args: number }[] = [];
  const reasserted: { deviceId: string; epoch?: number | undefined }[][] = [];
  let now = 1_000;
  const presence = createPresenceService({
    repo: {
      apply: async (...args: [PresenceRow[], string?]) => {
        written.push({
          rows: args[0].map((r) => ({ ...r, activeTs: { ...r.activeTs } })),
          node: args[1],
          args: args.length,
        });
      },
      resetOnline: async () => {},
      reassert: async (rows, n) => {
        expect(n).toBe(node);
        reasserted.push(rows);
        return rows.filter((r) => r.epoch !== undefined).map((r) => ({ deviceId: r.deviceId, projectId: 'p1' }));
      },
    },
    bus,
    logger: { error: () => {} },
    clock: () => now,
    node,
    ...(holds ? { holds } : {}),
  });
  return { bus, presence, written, reasserted, advance: (ms: number) => (now += ms) };
}

describe('presence in cluster mode', () => {
  it('writes with the node id and the session epoch, known before or after the first write', async () => {
    const { presence, written } = setup('A');
    presence.connected(device, 'mqtt');
    presence.sessionEpoch('d1', 7);
    await presence.flush();
    expect(written.at(-1)).toEqual({
      rows: [{ deviceId: 'd1', online: true, epoch: 7, activeTs: { connect: 1_000 } }],
      node: 'A',
      args: 2,
    });
    presence.disconnected(device, 'mqtt', 'keepalive');
    await presence.flush();
    expect(written.at(-1)!.rows).toEqual([
      { deviceId: 'd1', online: false, epoch: 7, activeTs: { disconnect: 1_000 } },
    ]);
    // The next session's epoch comes after its online was written: written again, with it.
    presence.connected(device, 'tcp');
    await presence.flush();
    expect(written.at(-1)!.rows).toEqual([{ deviceId: 'd1', online: true, activeTs: { connect: 1_000 } }]);
    presence.sessionEpoch('d1', 9);
    presence.sessionEpoch('d1', 8); // a late one of an earlier session changes nothing
    await presence.flush();
    expect(written.at(-1)!.rows).toEqual([{ deviceId: 'd1', online: true, epoch: 9, activeTs: {} }]);
    expect(presence.liveCount).toBe(1);
  });

  it('keeps an epoch told before the attach for the session that attaches, and one told after the end for its offline', async () => {
    const { presence, written, advance } = setup('A');
    presence.sessionEpoch('d1', 3);
    advance(500);
    presence.connected(device, 'mqtt');
    await presence.flush();
    expect(written.at(-1)!.rows).toMatchObject([{ deviceId: 'd1', online: true, epoch: 3 }]);
    presence.disconnected(device, 'mqtt', 'x');
    await presence.flush();
    // A session that ends before its epoch comes.
    presence.connected(device, 'mqtt');
    presence.disconnected(device, 'mqtt', 'x');
    presence.sessionEpoch('d1', 5);
    await presence.flush();
    expect(written.at(-1)!.rows).toMatchObject([{ deviceId: 'd1', online: false, epoch: 5 }]);
    // An early epoch too old is not taken.
    advance(60_000);
    presence.connected(device, 'mqtt');
    await presence.flush();
    expect(written.at(-1)!.rows[0]).not.toHaveProperty('epoch');
  });

  it('refuses a bad epoch with a clear error, and ignores epochs on one node', async () => {
    const { presence } = setup('A');
    expect(() => presence.sessionEpoch('d1', -1)).toThrow(/positive integer/);
    expect(() => presence.sessionEpoch('d1', 1.5)).toThrow(/positive integer/);
    expect(() => presence.sessionEpoch('', 1)).toThrow(/device id/);
    const single = setup(undefined);
    single.presence.connected(device, 'mqtt');
    single.presence.sessionEpoch('d1', 4);
    await single.presence.flush();
    // One node: the write as always (no node, no epoch), no sessions kept.
    expect(single.written).toEqual([
      { rows: [{ deviceId: 'd1', online: true, activeTs: { connect: 1_000 } }], node: undefined, args: 1 },
    ]);
    expect(single.presence.liveCount).toBe(0);
    expect(await single.presence.reassert()).toBe(0);
  });

  it('re-asserts the sessions it still holds and announces those that were taken offline', async () => {
    const held = new Set(['d1', 'd2']);
    const { presence, reasserted, bus } = setup('A', (id) => held.has(id));
    const online: DomainEvents['device.online'][] = [];
    bus.on('device.online', (e) => online.push(e));
    presence.connected(device, 'mqtt');
    presence.sessionEpoch('d1', 11);
    presence.connected({ ...device, deviceId: 'd2' }, 'tcp');
    presence.connected({ ...device, deviceId: 'd3' }, 'tcp');
    held.delete('d3'); // replaced by a newer login on another node: ended without a disconnect
    online.length = 0;
    expect(await presence.reassert()).toBe(1);
    expect(reasserted).toEqual([
      [
        { deviceId: 'd1', epoch: 11 },
        { deviceId: 'd2', epoch: undefined },
      ],
    ]);
    expect(online).toEqual([{ projectId: 'p1', deviceId: 'd1', transport: 'mqtt', ts: 1_000 }]);
    expect(presence.liveCount).toBe(2);
  });

  it('forgets a session a newer login replaced as soon as it ends, and writes nothing for it', async () => {
    const sessions = createSessionRegistry();
    const { presence, written } = setup('A', (id) => sessions.isOnline(id));
    const open = (deviceId: string) =>
      attachDevice(
        { sessions, presence },
        {
          identity: { ...device, deviceId },
          transport: 'mqtt',
          link: { send: async () => {}, close: () => {} },
        },
      );
    const d1 = open('d1');
    const d2 = open('d2');
    await presence.flush();
    const writes = written.length;
    expect(presence.liveCount).toBe(2);
    // A newer login of d1 on another node: this node's session is closed as replaced and ends without a
    // disconnect (the device stays online).
    expect(sessions.supersede(d1.session, 'replaced on node B')).toBe(true);
    d1.end();
    expect(presence.liveCount).toBe(1);
    await presence.flush();
    expect(written.length).toBe(writes); // nothing written for it: the device stays online
    // A newer login of d2 on this node: the older session's end keeps the newer one live.
    const d2Newer = open('d2');
    d2.end();
    expect(presence.liveCount).toBe(1);
    d2Newer.end();
    expect(presence.liveCount).toBe(0);
  });

  it('on one node a replaced session changes nothing (no sessions kept)', () => {
    const { presence } = setup(undefined, () => false);
    presence.connected(device, 'mqtt');
    presence.replaced('d1');
    expect(presence.liveCount).toBe(0);
    expect(presence.pendingCount).toBe(1);
  });
});

/** A cluster of one node whose lease, node losses and reconnects the test drives. */
function fakeCluster(nodeId = 'A') {
  const lost = new Set<(n: string) => void>();
  const reconnect = new Set<() => void>();
  const published: unknown[] = [];
  let onLease: ((held: boolean) => void) | undefined;
  let held = false;
  const alive = new Set([nodeId]);
  const cluster = {
    nodeId,
    leaseMs: 500,
    subject: (...parts: string[]) => ['t', ...parts].join('.'),
    lease: (_name: string, onChange?: (h: boolean) => void) => {
      onLease = onChange;
      return {
        name: _name,
        get held() {
          return held;
        },
        release: async () => {
          held = false;
        },
      };
    },
    onNodeLost: (l: (n: string) => void) => (lost.add(l), () => lost.delete(l)),
    onReconnect: (l: () => void) => (reconnect.add(l), () => reconnect.delete(l)),
    aliveNodes: () => alive,
    isAlive: (n: string) => alive.has(n),
    tellReaped: () => {},
    subscribe: () => () => {},
    publish: (_s: string, body: unknown) => (published.push(body), true),
  };
  return {
    cluster,
    alive,
    published,
    take: () => {
      held = true;
      onLease?.(true);
    },
    lose: (n: string) => lost.forEach((l) => l(n)),
    reconnect: () => reconnect.forEach((l) => l()),
  };
}

describe('the presence reaper', () => {
  function reaper(reapNode: (lost: string) => PresenceChange[]) {
    const fake = fakeCluster();
    const bus = createEventBus();
    const offline: DomainEvents['device.offline'][] = [];
    bus.on('device.offline', (e) => offline.push(e));
    const recounted: string[] = [];
    const sweeps: string[][] = [];
    const reassert = vi.fn(async () => 0);
    const done = { reaps: 0 };
    const cp = createClusterPresence({
      cluster: fake.cluster as never,
      repo: {
        reapNode: async (lost, by) => {
          expect(by).toBe('A');
          done.reaps++;
          return reapNode(lost);
        },
        reapAllBut: async (alive) => {
          sweeps.push([...alive]);
          return [{ deviceId: 'swept', projectId: 'p9' }];
        },
      },
      presence: { reassert },
      bus,
      countsChanged: (p) => recounted.push(p),
      logger: { info: () => {}, warn: () => {}, error: () => {} },
      clock: () => 42,
    });
    cp.start();
    return { fake, cp, offline, recounted, sweeps, reassert, done };
  }

  it('takes a lost node’s devices offline only while it holds the lease, announcing each once', async () => {
    const gone = new Set(['d1', 'd2']);
    const r = reaper(() => {
      const out = [...gone].map((deviceId) => ({ deviceId, projectId: 'p1' }));
      gone.clear();
      return out;
    });
    r.fake.lose('B');
    await new Promise((res) => setTimeout(res, 10));
    expect(r.done.reaps).toBe(0);
    // Taking the lease: B, lost meanwhile (perhaps the holder then), is reaped at once.
    r.fake.take();
    await vi.waitFor(() => expect(r.done.reaps).toBe(1));
    r.fake.lose('B');
    r.fake.lose('B');
    r.fake.lose('A'); // itself: never
    await vi.waitFor(() => expect(r.done.reaps).toBe(3));
    await new Promise((res) => setTimeout(res, 10));
    expect(r.offline.filter((e) => e.projectId === 'p1')).toEqual([
      { projectId: 'p1', deviceId: 'd1', transport: 'cluster', ts: 42, reason: 'node lost' },
      { projectId: 'p1', deviceId: 'd2', transport: 'cluster', ts: 42, reason: 'node lost' },
    ]);
    expect(r.recounted).toContain('p1');
    expect(r.fake.published).toContainEqual({ node: 'A', projects: ['p1'] });
    // At take-over, one beat later: the devices of nodes not alive.
    await vi.waitFor(() => expect(r.sweeps).toEqual([['A']]));
    await vi.waitFor(() => expect(r.offline.map((e) => e.deviceId)).toContain('swept'));
    await r.cp.stop();
    r.fake.lose('C');
    await new Promise((res) => setTimeout(res, 10));
    expect(r.done.reaps).toBe(3);
  });

  it('tries a reap that failed (the database away) again until it succeeds, and stops once the node is back', async () => {
    let failures = 2;
    const r = reaper(() => {
      if (failures-- > 0) throw new Error('connection refused');
      return [{ deviceId: 'late', projectId: 'p2' }];
    });
    r.fake.take();
    r.fake.lose('B');
    // 0.5 s, then about 1 s of back-off.
    await vi.waitFor(() => expect(r.offline.map((e) => e.deviceId)).toContain('late'), { timeout: 5_000 });
    expect(r.done.reaps).toBe(3);

    failures = Infinity;
    r.fake.lose('C');
    await vi.waitFor(() => expect(r.done.reaps).toBe(4));
    // C is back (a stall, not a death): the retries end.
    r.fake.alive.add('C');
    await new Promise((res) => setTimeout(res, 1_500));
    expect(r.done.reaps).toBeLessThanOrEqual(5);
    const settled = r.done.reaps;
    await new Promise((res) => setTimeout(res, 1_500));
    expect(r.done.reaps).toBe(settled);
    await r.cp.stop();
  }, 15_000);

  it('re-asserts this node’s sessions when NATS comes back', async () => {
    const r = reaper(() => []);
    r.fake.reconnect();
    expect(r.reassert).toHaveBeenCalledTimes(1);
    await r.cp.stop();
  });
});
