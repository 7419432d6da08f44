import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { apiCall, clusterProject, clusterSuite } from '../helpers/cluster.ts';
import { nextOn } from '../helpers/mqtt.ts';
import { until } from '../helpers/wait.ts';

/**
 * An attribute rule, for a device connected over MQTT to node A that also reports over HTTP
 * (device-protocol.md §5.1) through node B (the load balancer sends HTTP anywhere): each crossing of the
 * threshold must be one alarm (docs/cluster.md §4), whichever node each report reached. A node that raises or
 * ends an alarm tells the others (`alarm.changed`), which read the device's active alarms again.
 */
let p: Awaited<ReturnType<typeof clusterProject>>;
const suite = await clusterSuite(2, {
  setup: async (cluster) => {
    p = await clusterProject(cluster.nodes[0]!.http);
  },
});
const { skip } = suite;

async function mqttReport(c: MqttClient, temp: number) {
  const answer = nextOn(c, 'attributes/response');
  await c.publishAsync('attributes', JSON.stringify({ temp }), { qos: 1 });
  expect(JSON.parse(await answer)).toMatchObject({ result: 1 });
}
async function httpReport(via: string, d: { accessToken: string; projectKey: string }, temp: number) {
  const res = await fetch(`${via}/device/v1/${d.accessToken}/attributes`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'project-key': d.projectKey },
    body: JSON.stringify({ temp }),
  });
  expect(await res.json()).toMatchObject({ result: 1 });
}

describe.skipIf(skip)('attribute alarms of reports reaching two nodes', () => {
  it('raises the second crossing reported over MQTT on A after the recovery reported over HTTP on B', async () => {
    const [a, b] = suite.cluster.nodes;
    const type = await apiCall(a!.http, 'POST', '/api/v1/device_type', p.token, { name: 'Oven' });
    await apiCall(a!.http, 'POST', '/api/v1/alarm_rule', p.token, {
      name: 'hot',
      device_type_id: type.id,
      level: 2,
      condition: { kind: 'attribute', identifier: 'temp', op: '>', value: 40 },
    });
    const d = await p.device('oven', a!.http, { type: type.id });
    const c = await suite.mqtt(a!.mqttUrl, d.accessToken, d.projectKey);
    await c.subscribeAsync('attributes/response', { qos: 1 });
    const statuses = async () =>
      (
        (await apiCall(a!.http, 'GET', `/api/v1/device/${d.id}/alarm_logs`, p.token)).items as Array<{
          alarm_status: number;
        }>
      )
        .map((l) => l.alarm_status)
        .reverse();

    await mqttReport(c, 50); // crossing 1, evaluated on A
    await until(async () => (await statuses()).length === 1, 'the first alarm', { timeout: 5_000, interval: 100 });
    await httpReport(b!.http, d, 20); // back under, evaluated on B
    await until(async () => (await statuses()).length === 2, 'its recovery', { timeout: 5_000, interval: 100 });
    await mqttReport(c, 60); // crossing 2, evaluated on A
    await new Promise((r) => setTimeout(r, 2_000));
    expect(await statuses()).toEqual([1, 0, 1]);
  });
});
