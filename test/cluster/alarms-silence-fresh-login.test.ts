import { describe, expect, it } from 'vitest';
import { apiCall, clusterProject, clusterSuite } from '../helpers/cluster.ts';
import { nextOn } from '../helpers/mqtt.ts';
import { until } from '../helpers/wait.ts';

/**
 * A silence rule's timer moves to a surviving node when the node holding the device is SIGKILLed
 * (docs/cluster.md §4) — also when the node dies within a second of the device's login, before its presence
 * flush (docs/cluster.md §3) wrote the device as its own.
 */
const suite = await clusterSuite(2);
const { skip } = suite;

describe.skipIf(skip)('a silence timer of a device whose node dies right after its login', () => {
  it('fires once from the surviving node', async () => {
    const [a, b] = suite.cluster.nodes;
    const p = await clusterProject(a!.http);
    const type = await apiCall(a!.http, 'POST', '/api/v1/device_type', p.token, { name: 'Meter' });
    await apiCall(a!.http, 'POST', '/api/v1/alarm_rule', p.token, {
      name: 'quiet',
      device_type_id: type.id,
      level: 2,
      condition: { kind: 'silence', seconds: 3 },
    });
    const d = await p.device('meter', a!.http, { type: type.id });
    const c = await suite.mqtt(b!.mqttUrl, d.accessToken, d.projectKey);
    c.on('error', () => {});
    await c.subscribeAsync('attributes/response', { qos: 1 });
    const answer = nextOn(c, 'attributes/response');
    await c.publishAsync('attributes', JSON.stringify({ v: 1 }), { qos: 1 });
    expect(JSON.parse(await answer)).toMatchObject({ result: 1 });
    // Killed at once: the report is stored (acknowledged), the login not yet flushed.
    await b!.stop('SIGKILL');
    const logs = async () =>
      (await apiCall(a!.http, 'GET', `/api/v1/device/${d.id}/alarm_logs`, p.token)).items as Array<{
        alarm_status: number;
        alarm_info: { kind: string };
      }>;
    // A lease and a beat (≈ 10 s) for B's loss, the rule's 3 s, and slack.
    await until(async () => (await logs()).length > 0, 'the silence alarm from node A', {
      timeout: 30_000,
      interval: 250,
    });
    await new Promise((r) => setTimeout(r, 4_000));
    expect((await logs()).map((l) => [l.alarm_status, l.alarm_info.kind])).toEqual([[1, 'silence']]);
  }, 60_000);
});
