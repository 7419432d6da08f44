import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { apiCall, clusterProjectSuite, type ClusterNode } from '../helpers/cluster.ts';
import { until } from '../helpers/wait.ts';

/**
 * A device's message bucket follows it between server processes (docs/cluster.md §7): a device that spent its
 * burst on node A and logs in on node B (the newest login wins) finds on B what is left of its bucket, not a
 * fresh full one. The in-process half of this is test/cluster/bucket-handoff.test.ts.
 */
/** One message a second, bursts of two (device-protocol.md §12). */
const RATE = 1;
const { suite, project, nodes } = await clusterProjectSuite(2, {
  setup: async (cluster) => {
    await apiCall(cluster.nodes[0]!.http, 'PUT', '/api/v1/project/settings', project().token, {
      device_rate_limit: RATE,
    });
  },
});
const { skip } = suite;

/** The device logged in on `node`; `answers` collects its attributes/response payloads in order. */
async function login(node: ClusterNode, d: { accessToken: string; projectKey: string }) {
  const c = await suite.mqtt(node.mqttUrl, d.accessToken, d.projectKey);
  c.on('error', () => {});
  const answers: Array<{ result: number; errcode?: number }> = [];
  c.on('message', (topic, payload) => {
    if (topic === 'attributes/response') answers.push(JSON.parse(payload.toString()));
  });
  await c.subscribeAsync('attributes/response', { qos: 1 });
  return { c, answers };
}
/** Sends `n` QoS 0 reports at once and answers how many of them the node accepted. */
async function burst(c: MqttClient, answers: Array<{ result: number }>, n: number): Promise<number> {
  const before = answers.length;
  for (let i = 0; i < n; i++) c.publish('attributes', JSON.stringify({ n: i }), { qos: 0 });
  await until(() => answers.length === before + n, `${n} answers`, { timeout: 5_000 });
  return answers.slice(before).filter((a) => a.result === 1).length;
}

describe.skipIf(skip)('a device bucket between server processes', () => {
  it('is not refilled when the device moves from node A to node B', async () => {
    const [a, b] = nodes() as [ClusterNode, ClusterNode];
    const p = project();
    // B has known the project's rate since before the login (a fresh process reads it on the first login).
    const d = await p.device('spender', a.http);
    const warm = await login(b, d);
    warm.c.end(true);

    const onA = await login(a, d);
    // The burst (twice the rate) is accepted, the rest refused: the bucket on A is empty.
    expect(await burst(onA.c, onA.answers, 5)).toBe(2 * RATE);
    const aClosed = new Promise<void>((resolve) => onA.c.once('close', () => resolve()));

    const onB = await login(b, d);
    await aClosed;
    // A hands what is left over to B (one NATS message after the close).
    await new Promise((r) => setTimeout(r, 300));
    // A fresh bucket would take both; the handed-over one has refilled well under one message since.
    expect(await burst(onB.c, onB.answers, 2)).toBeLessThanOrEqual(1);
    expect(onB.answers.some((x) => (x as { errcode?: number }).errcode === 429)).toBe(true);
  });

  it('starts a device full on node B when it had spent nothing on node A', async () => {
    // The counter-check: the same moves with an unspent bucket accept a whole burst on B.
    const [a, b] = nodes() as [ClusterNode, ClusterNode];
    const p = project();
    const d = await p.device('saver', a.http);
    const onA = await login(a, d);
    const aClosed = new Promise<void>((resolve) => onA.c.once('close', () => resolve()));
    const onB = await login(b, d);
    await aClosed;
    await new Promise((r) => setTimeout(r, 300));
    expect(await burst(onB.c, onB.answers, 2)).toBe(2 * RATE);
  });
});
