import { connect as natsConnect, type NatsConnection } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { apiCall, clusterProject, clusterSuite, NATS_TEST_URL } from '../helpers/cluster.ts';
import { openSse } from '../helpers/sse.ts';
import { until } from '../helpers/wait.ts';

/**
 * Live events across nodes (docs/cluster.md §4, device-protocol.md §9, http-api.md §4.14): an application
 * subscriber and an event stream on one node see what devices connected to another node report, of their
 * own project only; a project nobody watches costs no NATS message.
 */
let nc: NatsConnection | undefined;
const suite = await clusterSuite(2, {
  setup: async () => {
    nc = await natsConnect({ servers: NATS_TEST_URL });
  },
});
suite.afterClose(() => nc?.close());
const { skip, streams } = suite;
const mqttClient = suite.mqtt;

describe.skipIf(skip)('live events of a cluster', () => {
  it('reach application subscribers and event streams on another node, of their project only', async () => {
    const [a, b] = suite.cluster.nodes;
    const mine = await clusterProject(a!.http);
    const theirs = await clusterProject(a!.http);
    const pump = await mine.device('pump');
    const valve = await theirs.device('valve');
    const view = (await apiCall(a!.http, 'POST', '/api/v1/view_key', mine.token, {})) as {
      view_key: string;
      view_secret: string;
    };
    const pumpDetail = (await apiCall(a!.http, 'GET', `/api/v1/device/${pump.id}`, mine.token)) as {
      view_token: string;
    };

    // On node A: an application subscriber and an event stream of `mine`.
    const viewer = await mqttClient(a!.mqttUrl, view.view_key, view.view_secret);
    const got: Array<{ topic: string; body: any }> = []; // eslint-disable-line @typescript-eslint/no-explicit-any -- arbitrary JSON
    viewer.on('message', (topic, payload) => got.push({ topic, body: JSON.parse(payload.toString()) }));
    await viewer.subscribeAsync(['attributes', 'event', 'online'].map((k) => `${view.view_key}/+/${k}`));
    const s = await openSse(`${a!.http}/api/v1/events`, mine.token);
    streams.push(s);
    expect(s.status).toBe(200);

    // Devices of both projects on node B. Node B learns of A's interest through the bucket: wait until a
    // report of the pump reaches A, then count from a fresh start.
    const dev = await mqttClient(b!.mqttUrl, pump.accessToken, pump.projectKey);
    const other = await mqttClient(b!.mqttUrl, valve.accessToken, valve.projectKey);
    await until(
      async () => {
        await dev.publishAsync('attributes', JSON.stringify({ warmup: 1 }), { qos: 1 });
        return got.some((m) => m.body.attributes?.warmup === 1);
      },
      'node B sends the live events of the project node A watches',
      { timeout: 10_000, interval: 200 },
    );
    // Late warm-up reports are left out of what follows.
    const warm = (body: any) => body?.attributes?.warmup !== undefined; // eslint-disable-line @typescript-eslint/no-explicit-any -- arbitrary JSON
    viewer.on('message', () => {
      for (let i = got.length - 1; i >= 0; i--) if (warm(got[i]!.body)) got.splice(i, 1);
    });
    got.length = 0;
    s.events.length = 0;

    await other.publishAsync('attributes', JSON.stringify({ leak: 1 }), { qos: 1 });
    await other.publishAsync('event/report/1', JSON.stringify({ method: 'burst', params: {} }), { qos: 1 });
    await dev.publishAsync('attributes', JSON.stringify({ temp: 21.5 }), { qos: 1 });
    await dev.publishAsync('event/report/1', JSON.stringify({ method: 'door', params: { open: 1 } }), { qos: 1 });
    dev.end(true);

    const events = () => s.events.filter((e) => !warm(e.data));
    await until(() => got.length >= 3 && events().length >= 3, 'attributes, event and offline on node A', {
      timeout: 5_000,
    });
    expect(got.map((m) => m.topic)).toEqual([
      `${view.view_key}/${pumpDetail.view_token}/attributes`,
      `${view.view_key}/${pumpDetail.view_token}/event`,
      `${view.view_key}/${pumpDetail.view_token}/online`,
    ]);
    expect(got[0]!.body).toMatchObject({ device: { id: pump.id, name: 'pump' }, attributes: { temp: 21.5 } });
    expect(got[1]!.body).toMatchObject({ method: 'door', params: { open: 1 } });
    expect(got[2]!.body).toMatchObject({ online: false });
    expect(events().map((e) => e.event)).toEqual(['attributes', 'event', 'online']);
    expect(events().every((e) => e.data.device.id === pump.id)).toBe(true);
    // Nothing of the other project, ever.
    expect(JSON.stringify([got, s.events])).not.toContain(valve.id);
  });

  it('reach node A when the device connects to node B: online', async () => {
    const [a, b] = suite.cluster.nodes;
    const p = await clusterProject(b!.http);
    const fan = await p.device('fan');
    const s = await openSse(`${a!.http}/api/v1/events`, p.token);
    streams.push(s);
    // The interest shows on B within a moment; connect until the online arrives.
    await until(
      async () => {
        const dev = await mqttClient(b!.mqttUrl, fan.accessToken, fan.projectKey);
        await new Promise((r) => setTimeout(r, 300));
        dev.end(true);
        return s.events.some((e) => e.event === 'online' && e.data.online === true);
      },
      'an online of a device on node B on node A',
      { timeout: 10_000, interval: 300 },
    );
    expect(s.events.find((e) => e.event === 'online')!.data).toMatchObject({ device: { id: fan.id, name: 'fan' } });
  });

  it('send nothing through NATS for a project nobody watches', async () => {
    const [, b] = suite.cluster.nodes;
    const p = await clusterProject(b!.http);
    const lonely = await p.device('lonely');
    const seen: string[] = [];
    const sub = nc!.subscribe(`${suite.cluster.name}.live.>`, { callback: (_err, msg) => void seen.push(msg.subject) });
    try {
      const dev = await mqttClient(b!.mqttUrl, lonely.accessToken, lonely.projectKey);
      await dev.publishAsync('attributes', JSON.stringify({ temp: 1 }), { qos: 1 });
      await dev.publishAsync('event/report/1', JSON.stringify({ method: 'm', params: {} }), { qos: 1 });
      dev.end(true);
      await new Promise((r) => setTimeout(r, 500));
      await nc!.flush();
      expect(seen.filter((subject) => subject.endsWith(`.${p.project.id}`))).toEqual([]);
    } finally {
      sub.unsubscribe();
    }
  });
});
