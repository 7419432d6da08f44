import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { apiCall, clusterProject, clusterSuite, webhookReceiver, type ClusterNode } from '../helpers/cluster.ts';
import { nextOn } from '../helpers/mqtt.ts';
import { until } from '../helpers/wait.ts';

/**
 * Alarms exactly once across three nodes (docs/cluster.md §4): an attribute rule is evaluated once per report,
 * on the node the report reached, so each crossing of a threshold is one alarm entry and one webhook delivery,
 * whichever node the device reports through (and when it moves between them); a silence timer runs on the
 * node holding the device, fires once cluster-wide, and moves to a surviving node when that node is SIGKILLed.
 */
let hook: Awaited<ReturnType<typeof webhookReceiver>>;
const suite = await clusterSuite(3, {
  timeout: 240_000,
  extraEnv: { ALARM_WEBHOOK_ALLOW_NETWORKS: '127.0.0.1/32' },
  setup: async () => {
    hook = await webhookReceiver();
    suite.afterClose(() => hook.close());
  },
});
const { skip } = suite;

type Project = Awaited<ReturnType<typeof clusterProject>>;
type Device = Awaited<ReturnType<Project['device']>>;
interface LogEntry {
  id: string;
  alarm_status: number;
  alarm_info: Record<string, unknown>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const logsOf = async (p: Project, via: string, deviceId: string): Promise<LogEntry[]> =>
  (await apiCall(via, 'GET', `/api/v1/device/${deviceId}/alarm_logs`, p.token)).items;
/** Alarm statuses of a device, oldest first (1 raised, 0 ended). */
const statuses = async (p: Project, via: string, deviceId: string) =>
  (await logsOf(p, via, deviceId)).map((l) => l.alarm_status).reverse();

/** A project with a device type, a webhook target and one rule of `condition` on the type, made on `via`. */
async function watched(via: string, condition: Record<string, unknown>) {
  const p = await clusterProject(via);
  const type = await apiCall(via, 'POST', '/api/v1/device_type', p.token, { name: 'Boiler' });
  await apiCall(via, 'POST', '/api/v1/notification_target', p.token, { name: 'ops', url: hook.url });
  await apiCall(via, 'POST', '/api/v1/alarm_rule', p.token, {
    name: 'rule',
    device_type_id: type.id,
    level: 2,
    condition,
  });
  return { p, typeId: type.id as string };
}

/** A device logged in on `node`, subscribed to its answers. */
async function login(node: ClusterNode, d: Device): Promise<MqttClient> {
  const c = await suite.mqtt(node.mqttUrl, d.accessToken, d.projectKey);
  c.on('error', () => {});
  await c.subscribeAsync('attributes/response', { qos: 1 });
  return c;
}
/** Reports `temp` and waits for its answer (stored and evaluated on that node). */
async function report(c: MqttClient, temp: number) {
  const answer = nextOn(c, 'attributes/response');
  await c.publishAsync('attributes', JSON.stringify({ temp }), { qos: 1 });
  expect(JSON.parse(await answer)).toMatchObject({ result: 1 });
}

describe.skipIf(skip)('alarms exactly once on three nodes', () => {
  it('raises one alarm and one delivery per crossing, for devices on different nodes and one moving between them', async () => {
    const nodes = suite.cluster.nodes;
    const { p, typeId } = await watched(nodes[0]!.http, { kind: 'attribute', identifier: 'temp', op: '>', value: 40 });
    // Every node reads the project's rules (the first report of each); the rule was made on node 0.
    const fixed = await Promise.all(nodes.map((_, i) => p.device(`fixed-${i}`, nodes[0]!.http, { type: typeId })));
    const mover = await p.device('mover', nodes[0]!.http, { type: typeId });
    const fixedClients = await Promise.all(fixed.map((d, i) => login(nodes[i]!, d)));
    // Two crossings each, with reports that stay over (or under) the threshold in between.
    for (const [i, c] of fixedClients.entries())
      for (const t of [20, 50, 55, 20, 21, 60, 61, 20]) await report(c, t + i);

    // The mover: raised on node 0, still over on node 1 (no second alarm), ended on node 1, raised on node 2,
    // ended on node 0 again (which knew an alarm of it that node 1 ended).
    let c = await login(nodes[0]!, mover);
    await report(c, 50);
    c = await login(nodes[1]!, mover);
    await report(c, 55);
    await report(c, 20);
    c = await login(nodes[2]!, mover);
    await report(c, 70);
    await report(c, 71);
    c = await login(nodes[0]!, mover);
    await report(c, 72);
    await report(c, 10);
    await report(c, 80);

    const devices = [...fixed, mover];
    const expected = new Map<string, number[]>(fixed.map((d) => [d.id, [1, 0, 1, 0]]));
    expected.set(mover.id, [1, 0, 1, 0, 1]);
    for (const d of devices)
      await until(
        async () => (await statuses(p, nodes[1]!.http, d.id)).length >= expected.get(d.id)!.length,
        `alarms of ${d.id}`,
        {
          timeout: 10_000,
          interval: 200,
        },
      );
    const total = [...expected.values()].reduce((n, s) => n + s.length, 0);
    await until(() => hook.posts.filter((x) => expected.has(x.deviceId)).length >= total, 'every delivery', {
      timeout: 15_000,
      interval: 200,
    });
    // Settled: nothing more comes from any node.
    await sleep(2_000);
    for (const d of devices) {
      expect(await statuses(p, nodes[2]!.http, d.id), d.id).toEqual(expected.get(d.id));
      const logs = await logsOf(p, nodes[0]!.http, d.id);
      const delivered = hook.posts.filter((x) => x.deviceId === d.id);
      // One delivery per entry, none twice.
      expect(delivered.map((x) => x.alarmId).sort(), d.id).toEqual(logs.map((l) => l.id).sort());
    }
  }, 60_000);

  it('fires a silence timer once cluster-wide, and again from a survivor once the holding node is SIGKILLed', async () => {
    const nodes = suite.cluster.nodes;
    const [a, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const { p, typeId } = await watched(a.http, { kind: 'silence', seconds: 2 });
    // Live holder: the device stays connected to node B and falls silent.
    const quiet = await p.device('quiet', a.http, { type: typeId });
    const qc = await login(b, quiet);
    await report(qc, 1);
    await until(async () => (await statuses(p, a.http, quiet.id)).length === 1, 'the silence alarm', {
      timeout: 10_000,
      interval: 200,
    });
    // Several silence periods later: still one alarm, delivered once, though three nodes know the rule.
    await sleep(5_000);
    expect(await statuses(p, c.http, quiet.id)).toEqual([1]);
    expect(hook.posts.filter((x) => x.deviceId === quiet.id).map((x) => x.status)).toEqual([1]);
    await report(qc, 2);
    await until(async () => (await statuses(p, a.http, quiet.id)).length === 2, 'its recovery', { timeout: 5_000 });

    // Killed holder: the device reports on node C (a rule of 5 s this time), which dies before the 5 s are
    // over, once its presence flush has written the device as C's; a survivor owns the device once C is lost
    // (a lease) and raises the silence alarm, once.
    const second = await watched(a.http, { kind: 'silence', seconds: 5 });
    const orphan = await second.p.device('orphan', a.http, { type: second.typeId });
    await report(await login(c, orphan), 1);
    await until(
      async () => (await apiCall(a.http, 'GET', `/api/v1/device/${orphan.id}`, second.p.token)).online === true,
      'the orphan online on node A',
      { timeout: 3_000, interval: 100 },
    );
    expect(await statuses(second.p, a.http, orphan.id)).toEqual([]);
    await c.stop('SIGKILL');
    const took = await until(
      async () => (await statuses(second.p, a.http, orphan.id)).length > 0,
      'the orphan’s silence alarm',
      { timeout: 25_000, interval: 250 },
    );
    expect(took).toBeLessThan(20_000);
    await until(() => hook.posts.some((x) => x.deviceId === orphan.id), 'its delivery', { timeout: 10_000 });
    await sleep(5_000);
    expect(await statuses(second.p, b.http, orphan.id)).toEqual([1]);
    expect(hook.posts.filter((x) => x.deviceId === orphan.id).map((x) => x.status)).toEqual([1]);
  }, 60_000);
});
