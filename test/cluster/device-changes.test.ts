import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { apiCall, clusterProjectSuite } from '../helpers/cluster.ts';
import { nextOn } from '../helpers/mqtt.ts';
import { until } from '../helpers/wait.ts';

/**
 * A device or device type changed through node A's API takes effect on node B within a second
 * (docs/cluster.md §4, `device.updated` and `device_type.changed` heard by every node): a device disabled on A
 * is cut off and refused on B, enabled again it is let in on B; a renamed device's alarms on B carry its new
 * name; a type's new or changed attribute model is enforced on B's reports.
 */
const { suite, project, nodes } = await clusterProjectSuite(2);
const { skip } = suite;
const nodeA = () => nodes()[0]!;
const nodeB = () => nodes()[1]!;

/** Within one second: the budget of every change. */
const SECOND = { timeout: 1_000, interval: 50 };

/** Whether a device login with these credentials is accepted by the node. */
async function accepted(url: string, username: string, password: string): Promise<boolean> {
  try {
    const c = await suite.mqtt(url, username, password, { connectTimeout: 2_000 });
    c.end(true);
    return true;
  } catch {
    return false;
  }
}
/** Reports `attributes` and answers the node's answer (`result` 1, or 0 with `errcode`). */
async function report(c: MqttClient, attributes: Record<string, unknown>) {
  const answer = nextOn(c, 'attributes/response');
  await c.publishAsync('attributes', JSON.stringify(attributes), { qos: 1 });
  return JSON.parse(await answer) as { result: number; errcode?: number; message?: string };
}
async function onB(d: { accessToken: string; projectKey: string }) {
  const c = await suite.mqtt(nodeB().mqttUrl, d.accessToken, d.projectKey);
  c.on('error', () => {});
  await c.subscribeAsync('attributes/response', { qos: 1 });
  return c;
}

describe.skipIf(skip)('device changes made on node A, on node B', () => {
  it('a device disabled on A is disconnected and refused on B at once; enabled again, B lets it in', async () => {
    const p = project();
    const d = await p.device('to-disable', nodeA().http);
    const c = await onB(d);
    expect(await report(c, { warm: 1 })).toMatchObject({ result: 1 });
    let closed = false;
    c.on('close', () => (closed = true));
    await apiCall(nodeA().http, 'PUT', `/api/v1/device/${d.id}/info`, p.token, { disabled: true });
    await until(() => closed, 'the connection on B closed', SECOND);
    expect(await accepted(nodeB().mqttUrl, d.accessToken, d.projectKey)).toBe(false);
    await apiCall(nodeA().http, 'PUT', `/api/v1/device/${d.id}/info`, p.token, { disabled: false });
    await until(() => accepted(nodeB().mqttUrl, d.accessToken, d.projectKey), 'the login on B accepted', SECOND);
  });

  it('a device renamed on A raises its alarms on B under the new name', async () => {
    const p = project();
    const type = await apiCall(nodeA().http, 'POST', '/api/v1/device_type', p.token, { name: 'Tank' });
    await apiCall(nodeA().http, 'POST', '/api/v1/alarm_rule', p.token, {
      name: 'full',
      device_type_id: type.id,
      level: 1,
      condition: { kind: 'attribute', identifier: 'level', op: '>', value: 90 },
    });
    const d = await p.device('old-name', nodeA().http, { type: type.id });
    const c = await onB(d);
    // B reads the device (name, type) and the rules, raises and ends an alarm under the old name.
    await report(c, { level: 95 });
    await report(c, { level: 10 });
    const messages = async () =>
      (
        (await apiCall(nodeA().http, 'GET', `/api/v1/device/${d.id}/alarm_logs`, p.token)).items as Array<{
          alarm_status: number;
          alarm_info: { message: string };
        }>
      )
        .filter((l) => l.alarm_status === 1)
        .map((l) => l.alarm_info.message);
    await until(async () => (await messages()).length === 1, 'the first alarm', { timeout: 5_000, interval: 100 });
    expect((await messages())[0]).toContain('old-name');

    await apiCall(nodeA().http, 'PUT', `/api/v1/device/${d.id}/info`, p.token, { name: 'new-name' });
    await new Promise((r) => setTimeout(r, 1_000));
    await report(c, { level: 99 });
    await until(async () => (await messages()).length === 2, 'the second alarm', { timeout: 5_000, interval: 100 });
    expect((await messages())[0]).toContain('new-name');
  });

  it('an attribute model added or changed on A is enforced on B', async () => {
    const p = project();
    const type = await apiCall(nodeA().http, 'POST', '/api/v1/device_type', p.token, { name: 'Valve' });
    const d = await p.device('valve', nodeA().http, { type: type.id });
    const c = await onB(d);
    // No model yet: B reads the type's (empty) models and accepts any value.
    expect(await report(c, { mode: 'open' })).toMatchObject({ result: 1 });
    await apiCall(nodeA().http, 'POST', `/api/v1/device_type/${type.id}/attribute`, p.token, {
      identifier: 'mode',
      name: 'Mode',
      data_type: 'number',
    });
    await until(async () => (await report(c, { mode: 'shut' })).errcode === 400, 'a string refused on B', SECOND);
    expect(await report(c, { mode: 3 })).toMatchObject({ result: 1 });
    // Changed to a string model on A: B now refuses a number.
    await apiCall(nodeA().http, 'PUT', `/api/v1/device_type/${type.id}/attribute/mode`, p.token, {
      data_type: 'string',
    });
    await until(async () => (await report(c, { mode: 4 })).errcode === 400, 'a number refused on B', SECOND);
    expect(await report(c, { mode: 'half' })).toMatchObject({ result: 1 });
  });
});
