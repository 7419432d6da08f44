import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLUSTER_JWT_SECRET, clusterProject, clusterSuite, type TestCluster } from '../helpers/cluster.ts';
import { connectDevice, nextOn } from '../helpers/mqtt.ts';
import { closedPort, serverEnv, spawnTs } from '../helpers/process.ts';
import { until } from '../helpers/wait.ts';

/**
 * A NATS outage (docs/cluster.md §5): the nodes keep serving the devices they hold — local delivery, ingest,
 * HTTP on local data — cross-node operations answer a clear error (no hang, no 500 stack), and everything
 * works again by itself once NATS is back; no node crashes. The outage is a TCP proxy in front of NATS cut
 * and restored. A node that cannot reach NATS at start refuses to start, with one line naming NATS_URL.
 */
const suite = await clusterSuite(2, { natsProxy: true });
const { skip, clients } = suite;

describe.skipIf(skip)('a NATS outage', () => {
  it('refuses to start a node that cannot reach NATS, in one line naming NATS_URL', async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'iot-nats-down-'));
    try {
      const p = spawnTs(
        'src/main.ts',
        [],
        serverEnv(dataDir, suite.cluster.databaseUrl, {
          NATS_URL: `nats://127.0.0.1:${await closedPort()}`,
          CLUSTER_NAME: suite.cluster.name,
          JWT_SECRET: CLUSTER_JWT_SECRET,
        }),
      );
      expect(await p.exit()).toBe(1);
      expect(p.output()).toMatch(/cannot reach NATS at nats:\/\/127\.0\.0\.1:\d+ .*check NATS_URL/);
      expect(p.output()).not.toMatch(/\n\s+at /);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('keeps each node serving its own devices, answers cross-node calls with a clear error, and recovers', async () => {
    const [a, b] = suite.cluster.nodes as [TestCluster['nodes'][0], TestCluster['nodes'][0]];
    const p = await clusterProject(a.http);
    const onA = await p.device('on-a');
    const onB = await p.device('on-b');
    const devA = await connectDevice(a.mqttUrl, { token: onA.accessToken, projectKey: onA.projectKey }, {}, clients);
    const devB = await connectDevice(b.mqttUrl, { token: onB.accessToken, projectKey: onB.projectKey }, {}, clients);
    // A device on A whose token is reset through B while they cannot talk: the kick cannot reach A then.
    const revoked = await p.device('revoked-meanwhile');
    const devRevoked = await connectDevice(
      a.mqttUrl,
      { token: revoked.accessToken, projectKey: revoked.projectKey },
      {},
      clients,
    );
    let revokedClosed = false;
    devRevoked.on('close', () => (revokedClosed = true));
    let devAClosed = false;
    devA.on('close', () => (devAClosed = true));
    await devA.subscribeAsync('attributes/push', { qos: 1 });
    await devB.subscribeAsync('attributes/push', { qos: 1 });
    // Before the outage a push through A reaches the device on B.
    await until(
      async () => (await p.call(a.http, 'POST', `/api/v1/control/device/${onB.id}/attributes`, { x: 0 })).result,
      'cross-node push',
      {
        timeout: 10_000,
        interval: 200,
      },
    );

    // Devices changed within a second before the outage count as changed during it (clock skew between nodes):
    // these were made just now, so the outage starts a little later.
    await new Promise((r) => setTimeout(r, 1_500));
    suite.proxy.cut();
    await until(
      async () => {
        const r = (await (await fetch(`${a.http}/readyz`)).json()) as { info?: { nats?: string } };
        return r.info?.nats === 'reconnecting';
      },
      'node A to notice the outage',
      { timeout: 15_000, interval: 100 },
    );
    // Still ready: a load balancer must not drain every node at once.
    expect((await fetch(`${a.http}/readyz`)).status).toBe(200);

    // Local delivery: a push through A to the device A holds.
    const pushed = nextOn(devA, 'attributes/push');
    const local = await p.call(a.http, 'POST', `/api/v1/control/device/${onA.id}/attributes`, { x: 1 });
    expect(local).toMatchObject({ result: true });
    expect(JSON.parse(await pushed)).toEqual({ x: 1 });

    // Ingest and local reads: a QoS 1 report to A is acknowledged and read back through A.
    await devA.publishAsync('attributes', JSON.stringify({ temperature: 21.5 }), { qos: 1 });
    await until(
      async () => {
        const r = await p.call(a.http, 'GET', `/api/v1/device/${onA.id}/attributes`);
        return JSON.stringify(r.info ?? {}).includes('21.5');
      },
      'the report to be readable on A',
      { timeout: 10_000, interval: 200 },
    );

    // Cross-node: a clear error in the envelope, quickly — not a hang, not a 500.
    const started = Date.now();
    const cross = await p.call(a.http, 'POST', `/api/v1/control/device/${onB.id}/attributes`, { x: 2 });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(cross.result).toBe(false);
    expect(cross.status).not.toBe(500);
    expect(cross.status).toBeGreaterThanOrEqual(400);
    expect(cross.message).toMatch(/cluster|NATS|unavailable|unreachable/i);

    // A token reset through B, whose kick cannot reach A now.
    expect((await p.call(b.http, 'POST', `/api/v1/device/${revoked.id}/certificate/reset`)).result).toBe(true);
    await new Promise((r) => setTimeout(r, 500));
    expect(revokedClosed).toBe(false);

    // NATS is back: cross-node delivery works again by itself; both nodes still run.
    suite.proxy.restore();
    // A closes the session whose credentials changed while it was cut off, and only that one.
    await until(() => revokedClosed, 'the revoked device to be disconnected once NATS is back', {
      timeout: 15_000,
      interval: 100,
    });
    expect(devAClosed).toBe(false);
    const again = nextOn(devB, 'attributes/push');
    await until(
      async () => (await p.call(a.http, 'POST', `/api/v1/control/device/${onB.id}/attributes`, { x: 3 })).result,
      'cross-node delivery after NATS returned',
      { timeout: 20_000, interval: 250 },
    );
    expect(JSON.parse(await again)).toEqual({ x: 3 });
    for (const node of suite.cluster.nodes) expect(node.proc.child.exitCode).toBeNull();
    for (const node of suite.cluster.nodes) {
      const r = (await (await fetch(`${node.http}/readyz`)).json()) as { info?: { nats?: string } };
      expect(r.info?.nats).toBe('connected');
    }
  });
});
