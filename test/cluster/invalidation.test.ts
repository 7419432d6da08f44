import { describe, expect, it } from 'vitest';
import {
  apiCall,
  apiRaw,
  CLUSTER_PLATFORM_TOKEN,
  clusterProject,
  clusterSuite,
  NATS_TEST_URL,
} from '../helpers/cluster.ts';
import { runCli } from '../helpers/cli.ts';
import { openSse } from '../helpers/sse.ts';
import { until } from '../helpers/wait.ts';

/**
 * Caches of every node forget within a second what a change made through another node outdated
 * (docs/cluster.md §4): each case warms node B's cache, changes the thing through node A, and watches B.
 */
const suite = await clusterSuite(2);
const { skip, streams } = suite;

/** Within one second: the budget of every case. */
const SECOND = { timeout: 1_000, interval: 50 };

const mqttConnect = (url: string, username: string, password: string) =>
  suite.mqtt(url, username, password, { connectTimeout: 2_000 });
/** Whether a device login with these credentials is accepted by the node. */
async function accepted(url: string, username: string, password: string): Promise<boolean> {
  try {
    const c = await mqttConnect(url, username, password);
    c.end(true);
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(skip)('caches of a cluster', () => {
  it('forget a reset access token on every node', async () => {
    const [a, b] = suite.cluster.nodes;
    const p = await clusterProject(a!.http);
    const d = await p.device('reset-me');
    expect(await accepted(b!.mqttUrl, d.accessToken, d.projectKey)).toBe(true);
    await apiCall(a!.http, 'POST', `/api/v1/device/${d.id}/certificate/reset`, p.token);
    await until(
      async () => !(await accepted(b!.mqttUrl, d.accessToken, d.projectKey)),
      'old token refused on B',
      SECOND,
    );
  });

  it('forget a deleted device on every node', async () => {
    const [a, b] = suite.cluster.nodes;
    const p = await clusterProject(a!.http);
    const d = await p.device('delete-me');
    expect(await accepted(b!.mqttUrl, d.accessToken, d.projectKey)).toBe(true);
    await apiCall(a!.http, 'DELETE', `/api/v1/device/${d.id}`, p.token);
    await until(
      async () => !(await accepted(b!.mqttUrl, d.accessToken, d.projectKey)),
      'deleted device refused on B',
      SECOND,
    );
  });

  it('forget a deleted project on every node: its tokens and device logins', async () => {
    const [a, b] = suite.cluster.nodes;
    const p = await clusterProject(a!.http);
    const d = await p.device('in-doomed-project');
    expect((await apiRaw(b!.http, 'GET', `/api/v1/device/${d.id}`, p.token)).status).toBe(200);
    expect(await accepted(b!.mqttUrl, d.accessToken, d.projectKey)).toBe(true);
    await apiCall(a!.http, 'DELETE', `/platform/v1/projects/${p.project.id}`, CLUSTER_PLATFORM_TOKEN);
    await until(
      async () =>
        (await apiRaw(b!.http, 'GET', `/api/v1/device/${d.id}`, p.token)).status === 401 &&
        !(await accepted(b!.mqttUrl, d.accessToken, d.projectKey)),
      'token and device refused on B',
      SECOND,
    );
  });

  it('forget an app secret reset on every node', async () => {
    const [a, b] = suite.cluster.nodes;
    const p = await clusterProject(a!.http);
    expect((await apiRaw(b!.http, 'GET', '/api/v1/project/settings', p.token)).status).toBe(200);
    await apiCall(a!.http, 'POST', `/api/v1/app/${p.project.app.app_id}/secret_reset`, p.token);
    await until(
      async () => (await apiRaw(b!.http, 'GET', '/api/v1/project/settings', p.token)).status === 401,
      'token of the reset app refused on B',
      SECOND,
    );
  });

  it('read a project’s changed rate limit again on every node', async () => {
    const [a, b] = suite.cluster.nodes;
    const p = await clusterProject(a!.http);
    const before = await apiCall(b!.http, 'GET', '/api/v1/project/settings', p.token);
    expect(before.device_rate_limit).toBeNull();
    await apiCall(a!.http, 'PUT', '/api/v1/project/settings', p.token, { device_rate_limit: 7 });
    await until(
      async () => (await apiCall(b!.http, 'GET', '/api/v1/project/settings', p.token)).device_rate_limit === 7,
      'the new rate limit on B',
      SECOND,
    );
  });

  it('close application subscribers of a rotated view secret on every node', async () => {
    const [a, b] = suite.cluster.nodes;
    const p = await clusterProject(a!.http);
    const view = await apiCall(a!.http, 'POST', '/api/v1/view_key', p.token, {});
    const viewer = await mqttConnect(b!.mqttUrl, view.view_key, view.view_secret);
    let closed = false;
    viewer.on('close', () => (closed = true));
    await apiCall(a!.http, 'POST', '/api/v1/view_key', p.token, {});
    await until(() => closed, 'the viewer on B closed', SECOND);
    expect(await accepted(b!.mqttUrl, view.view_key, view.view_secret)).toBe(false);
  });

  it('read a device type’s new data stream on every node', async () => {
    const [a, b] = suite.cluster.nodes;
    const p = await clusterProject(a!.http);
    const type = await apiCall(a!.http, 'POST', '/api/v1/device_type', p.token, { name: 'meter' });
    // A type with streams accepts only those (device-protocol.md §7).
    await apiCall(a!.http, 'POST', `/api/v1/device_type/${type.id}/data_stream`, p.token, {
      identifier: 'level',
      format: 'hex',
    });
    const d = await p.device('meter-1', a!.http, { type: type.id });
    const s = await openSse(`${a!.http}/api/v1/events`, p.token);
    streams.push(s);
    const dev = await mqttConnect(b!.mqttUrl, d.accessToken, d.projectKey);
    // A's stream is known to B once B's reports reach it.
    await until(
      async () => {
        await dev.publishAsync('attributes', JSON.stringify({ warm: 1 }), { qos: 1 });
        return s.events.some((e) => e.event === 'attributes');
      },
      'B sends the events A watches',
      { timeout: 10_000, interval: 200 },
    );
    // Unknown to the type: dropped, and B now holds the type's streams (none) in its cache.
    await dev.publishAsync('data/flow', Buffer.from([1, 2]), { qos: 1 });
    await new Promise((r) => setTimeout(r, 300)); // its look-up of the type ends after the PUBACK
    await apiCall(a!.http, 'POST', `/api/v1/device_type/${type.id}/data_stream`, p.token, {
      identifier: 'flow',
      format: 'hex',
    });
    await until(
      async () => {
        await dev.publishAsync('data/flow', Buffer.from([0xca, 0xfe]), { qos: 1 });
        return s.events.some((e) => e.event === 'data' && e.data.hex === 'cafe');
      },
      'the new stream accepted on B',
      SECOND,
    );
    // Raw bytes survive the trip between nodes; the message sent before the stream existed was dropped.
    expect(s.events.filter((e) => e.event === 'data').map((e) => [e.data.identifier, e.data.hex])).toContainEqual([
      'flow',
      'cafe',
    ]);
    expect(s.events.some((e) => e.event === 'data' && e.data.hex === '0102')).toBe(false);
  });

  it('hear a project deleted from the command line (DATABASE_URL and NATS_URL set)', async () => {
    const [a, b] = suite.cluster.nodes;
    const p = await clusterProject(a!.http);
    const d = await p.device('cli-doomed');
    for (const node of [a!, b!]) {
      expect((await apiRaw(node.http, 'GET', `/api/v1/device/${d.id}`, p.token)).status).toBe(200);
      expect(await accepted(node.mqttUrl, d.accessToken, d.projectKey)).toBe(true);
    }
    const env = { DATABASE_URL: suite.cluster.databaseUrl, CLUSTER_NAME: suite.cluster.name };
    // NATS unreachable: a clear refusal, and nothing deleted the nodes would not hear of.
    const refused = await runCli(['project', 'delete', p.project.id, '--yes'], {
      ...env,
      NATS_URL: 'nats://127.0.0.1:1',
    });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('cannot reach NATS at nats://127.0.0.1:1');
    expect((await apiRaw(a!.http, 'GET', `/api/v1/device/${d.id}`, p.token)).status).toBe(200);

    // A device connected to node B while the project is deleted from the command line.
    const connected = await suite.mqtt(b!.mqttUrl, d.accessToken, d.projectKey);
    let closed = false;
    connected.on('close', () => (closed = true));
    // A CLUSTER_NAME no running node has is pointed out (what it changes would be heard by nobody).
    const wrongName = await runCli(['project', 'list'], {
      ...env,
      CLUSTER_NAME: 'no_such_cluster',
      NATS_URL: NATS_TEST_URL,
    });
    expect(wrongName.stderr).toContain('No running node of cluster no_such_cluster answers');
    const run = await runCli(['project', 'delete', p.project.id, '--yes'], { ...env, NATS_URL: NATS_TEST_URL });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).not.toContain('No running node');
    await until(() => closed, 'the connected device to be closed', SECOND);
    for (const node of [a!, b!])
      await until(
        async () =>
          (await apiRaw(node.http, 'GET', `/api/v1/device/${d.id}`, p.token)).status === 401 &&
          !(await accepted(node.mqttUrl, d.accessToken, d.projectKey)),
        `token and device refused on ${node.id}`,
        SECOND,
      );
  });
});
