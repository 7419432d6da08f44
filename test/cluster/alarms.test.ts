import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDevice } from '../helpers/mqtt.ts';
import { apiCall, clusterProject, clusterSkip, startCluster, type TestCluster } from '../helpers/cluster.ts';

/**
 * Alarms in a cluster (docs/cluster.md §4): a device's offline timer runs on the node holding (or last
 * holding) its session, so an offline alarm is raised once cluster-wide; a node killed hands its devices'
 * timers to a surviving node within a lease; a webhook target gets each alarm entry once, whichever node
 * raised it; a rule or target made on one node takes effect on every other.
 */
const skip = await clusterSkip();
let cluster: TestCluster | undefined;
const clients: MqttClient[] = [];

/** A local webhook receiver: every POST, by the alarm entry id it carries. */
const posts: Array<{ alarmId: string; status: number; deviceId: string }> = [];
/** Devices whose next POST is answered 500 (the delivery is retried after ALARM_WEBHOOK_BACKOFF_MS). */
const failNext = new Set<string>();
/** Every POST, with the HTTP status it was answered with. */
const answered: Array<{ alarmId: string; code: number; at: number }> = [];
let server: http.Server | undefined;
let hookUrl = '';

beforeAll(async () => {
  if (skip) return;
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString()) as {
        alarm: { id: string; alarm_status: number; device_id: string };
      };
      const code = failNext.delete(body.alarm.device_id) ? 500 : 200;
      answered.push({ alarmId: body.alarm.id, code, at: Date.now() });
      if (code === 200)
        posts.push({ alarmId: body.alarm.id, status: body.alarm.alarm_status, deviceId: body.alarm.device_id });
      res.writeHead(code).end('ok');
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  hookUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  cluster = await startCluster(2, {
    // A failed delivery is retried 15 s later: long enough to kill the node waiting for it.
    extraEnv: { ALARM_WEBHOOK_ALLOW_NETWORKS: '127.0.0.1/32', ALARM_WEBHOOK_BACKOFF_MS: '15000' },
  });
}, 180_000);
afterAll(async () => {
  for (const c of clients) c.end(true);
  await cluster?.close();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
});

type Project = Awaited<ReturnType<typeof clusterProject>>;
type Device = Awaited<ReturnType<Project['device']>>;
interface LogEntry {
  id: string;
  device_id: string;
  alarm_status: number;
  alarm_info: Record<string, unknown>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Polls until `check` holds; answers the milliseconds it took. */
async function within(ms: number, check: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > ms) throw new Error(`not within ${ms} ms`);
    await sleep(200);
  }
}
async function connect(url: string, d: Device): Promise<MqttClient> {
  const c = await connectDevice(url, { token: d.accessToken, projectKey: d.projectKey }, {}, clients);
  c.on('error', () => {});
  return c;
}
async function logsOf(p: Project, via: string, deviceId: string): Promise<LogEntry[]> {
  return ((await apiCall(via, 'GET', `/api/v1/device/${deviceId}/alarm_logs`, p.token)) as { items: LogEntry[] }).items;
}
const online = async (p: Project, via: string, id: string) =>
  ((await apiCall(via, 'GET', `/api/v1/device/${id}`, p.token)) as { online: boolean }).online;

/** A project with a device type; `watched` adds an offline rule (1 s) and a webhook target. */
async function project(via: string, watched: boolean) {
  const p = await clusterProject(via);
  const typeId = ((await apiCall(via, 'POST', '/api/v1/device_type', p.token, { name: 'Pump' })) as { id: string }).id;
  const watch = async () => {
    await apiCall(via, 'POST', '/api/v1/notification_target', p.token, { name: 'ops', url: hookUrl });
    await apiCall(via, 'POST', '/api/v1/alarm_rule', p.token, {
      name: 'gone',
      device_type_id: typeId,
      level: 2,
      condition: { kind: 'offline', for_seconds: 1 },
    });
  };
  if (watched) await watch();
  return { p, typeId, watch };
}

describe.skipIf(skip)('alarms across the nodes of a cluster', () => {
  it('raises an offline alarm once, on the node that held the device, for a rule and target made on the other node', async () => {
    const [a, b] = cluster!.nodes;
    const { p, typeId, watch } = await project(a!.http, false);
    const d = await p.device('on-b', a!.http, { type: typeId });
    const c = await connect(b!.mqttUrl, d);
    // B reads the project's rules (none yet) on the device's first report, and keeps them cached.
    c.publish('attributes', JSON.stringify({ temp: 20 }));
    await within(5_000, () => online(p, a!.http, d.id));
    await sleep(500);
    // Made on A: B's caches learn of them through the cluster's events.
    await watch();
    await sleep(500);
    c.end(true);
    await within(10_000, async () => (await logsOf(p, a!.http, d.id)).length > 0);
    // Past the window and a few timer periods: still one alarm, and one POST of it.
    await sleep(3_000);
    const logs = await logsOf(p, b!.http, d.id);
    expect(logs.map((l) => [l.alarm_status, l.alarm_info.kind])).toEqual([[1, 'offline']]);
    await within(5_000, async () => posts.some((x) => x.alarmId === logs[0]!.id));
    await sleep(1_000);
    expect(posts.filter((x) => x.deviceId === d.id)).toEqual([{ alarmId: logs[0]!.id, status: 1, deviceId: d.id }]);
  }, 60_000);

  it('raises one offline alarm from the surviving node when the node holding the device is killed', async () => {
    const [a, b] = cluster!.nodes;
    const { p, typeId } = await project(a!.http, true);
    const d = await p.device('killed-with-b', a!.http, { type: typeId });
    await connect(b!.mqttUrl, d);
    await within(5_000, () => online(p, a!.http, d.id));
    const killedAt = Date.now();
    await b!.stop('SIGKILL');
    // A lease (10 s) for the loss to be known and the reaper to act, the rule's 1 s, and some slack.
    await within(20_000, async () => (await logsOf(p, a!.http, d.id)).length > 0);
    expect(Date.now() - killedAt).toBeLessThan(20_000);
    await sleep(3_000);
    const logs = await logsOf(p, a!.http, d.id);
    expect(logs.map((l) => [l.alarm_status, l.alarm_info.kind])).toEqual([[1, 'offline']]);
    await within(5_000, async () => posts.some((x) => x.alarmId === logs[0]!.id));
    // The device comes back on A: the alarm recovers, and the target hears that once too.
    await connect(a!.mqttUrl, d);
    await within(5_000, async () => (await logsOf(p, a!.http, d.id)).length === 2);
    await within(5_000, async () => posts.filter((x) => x.deviceId === d.id).length === 2);
    await sleep(1_000);
    const after = await logsOf(p, a!.http, d.id);
    expect(after.map((l) => l.alarm_status)).toEqual([0, 1]);
    expect(posts.filter((x) => x.deviceId === d.id).map((x) => [x.alarmId, x.status])).toEqual([
      [logs[0]!.id, 1],
      [after[0]!.id, 0],
    ]);
  }, 60_000);

  it('delivers a webhook retry of a killed node from a surviving node, once its claim has lapsed', async () => {
    const a = cluster!.nodes[0]!;
    const c = await cluster!.addNode();
    const { p, typeId } = await project(a.http, true);
    const d = await p.device('on-c', a.http, { type: typeId });
    const client = await connect(c.mqttUrl, d);
    await within(5_000, () => online(p, a.http, d.id));
    failNext.add(d.id);
    client.end(true);
    // C raises the alarm and its first delivery fails: C holds the job, waiting 15 s for the retry.
    await within(10_000, async () => answered.some((x) => x.code === 500 && !failNext.has(d.id)));
    const [log] = await logsOf(p, a.http, d.id);
    const failedAt = answered.find((x) => x.alarmId === log!.id)!.at;
    await c.stop('SIGKILL');
    // A takes the job over once C's claim lapses (a lease) and delivers it when the retry is due.
    await within(30_000, async () => posts.some((x) => x.alarmId === log!.id));
    expect(Date.now() - failedAt).toBeGreaterThanOrEqual(14_000);
    await sleep(2_000);
    expect(answered.filter((x) => x.alarmId === log!.id).map((x) => x.code)).toEqual([500, 200]);
  }, 120_000);
});
