import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { METRIC_NAMES } from '../../src/metrics/metrics.ts';
import {
  createProject,
  createTestApp,
  deviceWithToken,
  expectOk,
  type ProjectFixture,
  type TestContext,
} from '../helpers/app.ts';
import { startAppWithBroker, type TestBroker } from '../helpers/broker.ts';
import { connectDevice, nextOn } from '../helpers/mqtt.ts';
import { until } from '../helpers/wait.ts';

/** GET /metrics (docs/metrics.md): off without METRICS_TOKEN, behind it otherwise, and what it counts. */
const TOKEN = 'metrics-token-0123456789abcdef';

let ctx: TestContext;
let tb: TestBroker;
let p: ProjectFixture;
let tcpPort: number;
let stop: (() => Promise<void>) | undefined;
const clients: MqttClient[] = [];
const sockets: net.Socket[] = [];

beforeAll(async () => {
  ({ ctx, tb, tcpPort, close: stop } = await startAppWithBroker({ app: { METRICS_TOKEN: TOKEN }, tcp: {} }));
  p = await createProject(ctx);
});
afterAll(async () => {
  for (const c of clients) c.end(true);
  for (const s of sockets) s.destroy();
  await stop?.();
});

async function scrape(of: TestContext = ctx): Promise<string> {
  const res = await of.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.statusCode).toBe(200);
  return res.body;
}

/** The value of the one series of `name` whose labels include every one of `labels` (0 when none). */
function value(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let found = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = (m[2] ?? '').split(',');
    if (wanted.every((w) => have.includes(w))) found += Number(m[3]);
  }
  return found;
}

describe('GET /metrics without METRICS_TOKEN', () => {
  it('is an unknown route: 404 like any other', async () => {
    const off = await createTestApp();
    try {
      const metrics = await off.app.inject({ method: 'GET', url: '/metrics' });
      const unknown = await off.app.inject({ method: 'GET', url: '/no-such-route' });
      expect(metrics.statusCode).toBe(404);
      expect(metrics.json()).toEqual(unknown.json());
      expect(off.metrics).toBeUndefined();
    } finally {
      await off.close();
    }
  });
});

describe('GET /metrics with METRICS_TOKEN', () => {
  it('refuses a missing or wrong token with 401 in the API envelope', async () => {
    for (const authorization of [undefined, 'Bearer wrong-token-0123456789abcd', `Bearer ${TOKEN}x`, TOKEN]) {
      const res = await ctx.app.inject({
        method: 'GET',
        url: '/metrics',
        headers: authorization ? { authorization } : {},
      });
      expect(res.statusCode).toBe(401);
      expect(res.json()).toMatchObject({ result: false, errcode: 401 });
      expect(res.body).not.toContain('iot_');
    }
  });

  it('answers Prometheus text with every agreed name, each with HELP and TYPE, labelled by node', async () => {
    const res = await ctx.app.inject({
      method: 'GET',
      url: '/metrics',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    for (const name of METRIC_NAMES) {
      expect(res.body).toContain(`# HELP ${name} `);
      expect(res.body).toMatch(new RegExp(`^# TYPE ${name} (counter|gauge|histogram)$`, 'm'));
    }
    // prom-client's process and Node.js metrics, on this server's registry.
    for (const name of [
      'nodejs_eventloop_lag_seconds',
      'nodejs_heap_size_used_bytes',
      'process_cpu_seconds_total',
      'process_open_fds',
    ])
      expect(res.body).toContain(`# TYPE ${name} `);
    // But none of those whose every scrape walks all the process's handles (docs/metrics.md §5).
    for (const name of ['nodejs_active_handles', 'nodejs_active_resources']) expect(res.body).not.toContain(name);
    // Not part of the project API: absent from its OpenAPI document.
    const openapi = await ctx.app.inject({ method: 'GET', url: '/docs/json' });
    expect(openapi.statusCode).toBe(200);
    expect(Object.keys(openapi.json().paths)).not.toContain('/metrics');
    expect(value(res.body, 'iot_db_pool_max', { node: 'test-node' })).toBe(ctx.database.pool?.max ?? 0);
    // PostgreSQL: this pool's own connections (the scrape's query holds one); PGlite has none.
    const connections =
      value(res.body, 'iot_db_connections', { state: 'active' }) +
      value(res.body, 'iot_db_connections', { state: 'idle' });
    if (ctx.database.pool) {
      expect(value(res.body, 'iot_db_connections', { state: 'active' })).toBeGreaterThanOrEqual(1);
      expect(connections).toBeLessThanOrEqual(ctx.database.pool.max);
    } else expect(connections).toBe(0);
  });

  it('counts an MQTT device connecting and its report, and the values ingested', async () => {
    const d = await deviceWithToken(p, { name: 'metered' });
    const before = await scrape();
    const c = await connectDevice(tb.url, { token: d.token, projectKey: p.project.project_key }, {}, clients);
    const connected = await scrape();
    expect(value(connected, 'iot_connections', { transport: 'mqtt' })).toBe(
      value(before, 'iot_connections', { transport: 'mqtt' }) + 1,
    );
    expect(value(connected, 'iot_logins_total', { transport: 'mqtt', result: 'ok' })).toBe(
      value(before, 'iot_logins_total', { transport: 'mqtt', result: 'ok' }) + 1,
    );
    await c.publishAsync('attributes', JSON.stringify({ temperature: 21.5, humidity: 40 }), { qos: 1 });
    const reported = await scrape();
    expect(value(reported, 'iot_messages_received_total', { transport: 'mqtt' })).toBe(
      value(before, 'iot_messages_received_total', { transport: 'mqtt' }) + 1,
    );
    // A QoS 1 report is acknowledged once its batch committed: its values are counted by then.
    expect(value(reported, 'iot_ingest_values_total')).toBe(value(before, 'iot_ingest_values_total') + 2);
    expect(value(reported, 'iot_ingest_batch_seconds_count')).toBeGreaterThan(
      value(before, 'iot_ingest_batch_seconds_count'),
    );
    c.end(true);
    await until(
      async () =>
        value(await scrape(), 'iot_connections', { transport: 'mqtt' }) ===
        value(before, 'iot_connections', { transport: 'mqtt' }),
      'the connection to be uncounted',
    );
  });

  it('counts a refused login by its result', async () => {
    const before = await scrape();
    await expect(
      connectDevice(tb.url, { token: 'no-such-token-0123456789', projectKey: p.project.project_key }),
    ).rejects.toThrow();
    expect(value(await scrape(), 'iot_logins_total', { transport: 'mqtt', result: 'bad_credentials' })).toBe(
      value(before, 'iot_logins_total', { transport: 'mqtt', result: 'bad_credentials' }) + 1,
    );
  });

  it('counts commands reaching sent, replied and timeout', async () => {
    const d = await deviceWithToken(p, { name: 'commanded' });
    const c = await connectDevice(tb.url, { token: d.token, projectKey: p.project.project_key }, {}, clients);
    await c.subscribeAsync(['command/send/+', 'command/reply/response/+'], { qos: 1 });
    const before = await scrape();
    const sent = nextOn(c, 'command/send/1');
    expectOk(await p.api.post(`/api/v1/control/device/${d.id}/command`, { method: 'reboot', params: {} }));
    await sent;
    const answered = nextOn(c, 'command/reply/response/1');
    await c.publishAsync('command/reply/1', JSON.stringify({ method: 'reboot', params: { ok: true }, id: 1 }), {
      qos: 1,
    });
    await answered;
    // A second command, never answered: the sweep moves it to timeout once its second has passed.
    expectOk(await p.api.post(`/api/v1/control/device/${d.id}/command`, { method: 'x', params: {}, timeout: 1 }));
    await new Promise((r) => setTimeout(r, 1_100));
    await ctx.services.commands.sweep();
    const after = await scrape();
    const delta = (state: string) =>
      value(after, 'iot_commands_total', { state }) - value(before, 'iot_commands_total', { state });
    expect(delta('queued')).toBe(2);
    expect(delta('sent')).toBe(2);
    expect(delta('replied')).toBe(1);
    // The sweep is one statement over every project in the database: on a database other test files share,
    // it also times out their overdue commands, counted here too. Ours is among them.
    expect(delta('timeout')).toBeGreaterThanOrEqual(1);
    const log = expectOk(await p.api.get(`/api/v1/device/${d.id}/commands`));
    expect(log.items.find((cmd: { method: string }) => cmd.method === 'x')?.state).toBe('timeout');
    expect(value(after, 'iot_messages_sent_total', { transport: 'mqtt' })).toBeGreaterThanOrEqual(
      value(before, 'iot_messages_sent_total', { transport: 'mqtt' }) + 3,
    );
  });

  it('times HTTP requests under their route template, never their URL, and no label holds an id', async () => {
    const d = await deviceWithToken(p, { name: 'http device' });
    const report = await ctx.app.inject({
      method: 'POST',
      url: `/device/v1/${d.token}/attributes`,
      headers: { 'content-type': 'application/json', 'project-key': p.project.project_key },
      payload: JSON.stringify({ pressure: 1013 }),
    });
    expect(report.statusCode).toBe(200);
    await ctx.app.inject({ method: 'GET', url: `/no/such/route/${d.token}` });
    const text = await scrape();
    const route = '/device/v1/:access_token/attributes';
    expect(
      value(text, 'iot_http_request_duration_seconds_count', { method: 'POST', route, status_class: '2xx' }),
    ).toBeGreaterThanOrEqual(1);
    expect(value(text, 'iot_http_request_duration_seconds_count', { route: 'unmatched' })).toBeGreaterThanOrEqual(1);
    expect(value(text, 'iot_messages_received_total', { transport: 'http' })).toBeGreaterThanOrEqual(1);
    // Neither the device's token nor any device or project id appears anywhere.
    expect(text).not.toContain(d.token);
    expect(text).not.toContain(d.id);
    expect(text).not.toContain(p.project.project_key);
    expect(text).not.toContain(p.project.id);
    for (const m of text.matchAll(/="([^"]*)"/g)) expect(m[1]).not.toMatch(/^[0-9a-f]{24,}$/);
  });
});

describe('device transports', () => {
  it('counts a raw TCP device: its login, its connection while open, its messages', async () => {
    const d = await deviceWithToken(p, { name: 'dtu' });
    const before = await scrape();
    const socket = net.connect(tcpPort, '127.0.0.1');
    sockets.push(socket);
    socket.on('error', () => {});
    socket.write(`${p.project.project_key}&${d.token}\n`);
    await until(async () => ctx.services.sessions.isOnline(d.id), 'the TCP device to log in');
    const open = await scrape();
    expect(value(open, 'iot_connections', { transport: 'tcp' })).toBe(
      value(before, 'iot_connections', { transport: 'tcp' }) + 1,
    );
    expect(value(open, 'iot_logins_total', { transport: 'tcp', result: 'ok' })).toBe(
      value(before, 'iot_logins_total', { transport: 'tcp', result: 'ok' }) + 1,
    );
    socket.write('hello\n');
    const received = () => value(before, 'iot_messages_received_total', { transport: 'tcp' }) + 1;
    await until(
      async () => value(await scrape(), 'iot_messages_received_total', { transport: 'tcp' }) === received(),
      'the TCP message to be counted',
    );
    socket.destroy();
    await until(
      async () =>
        value(await scrape(), 'iot_connections', { transport: 'tcp' }) ===
        value(before, 'iot_connections', { transport: 'tcp' }),
      'the TCP connection to be uncounted',
    );
  });

  it('counts application viewers while connected, and a viewer publishing as unauthorized', async () => {
    const key = expectOk(await p.api.post('/api/v1/view_key', {}));
    const before = await scrape();
    const viewer = await mqtt.connectAsync(tb.url, {
      username: key.view_key,
      password: key.view_secret,
      reconnectPeriod: 0,
    });
    clients.push(viewer);
    expect(value(await scrape(), 'iot_viewer_connections')).toBe(value(before, 'iot_viewer_connections') + 1);
    viewer.publish('anything', 'x');
    await until(
      async () =>
        value(await scrape(), 'iot_messages_dropped_total', { transport: 'mqtt', reason: 'unauthorized' }) ===
        value(before, 'iot_messages_dropped_total', { transport: 'mqtt', reason: 'unauthorized' }) + 1,
      'the refused publish to be counted',
    );
    viewer.end(true);
    // A viewer's refused login is not a device login.
    await expect(
      mqtt.connectAsync(tb.url, { username: key.view_key, password: 'wrong', reconnectPeriod: 0 }),
    ).rejects.toThrow();
    const after = await scrape();
    for (const result of ['bad_credentials', 'refused'])
      expect(value(after, 'iot_logins_total', { transport: 'mqtt', result })).toBe(
        value(before, 'iot_logins_total', { transport: 'mqtt', result }),
      );
    await until(
      async () => value(await scrape(), 'iot_viewer_connections') === value(before, 'iot_viewer_connections'),
      'the viewer to be uncounted',
    );
  });
});

describe('alarms and webhook deliveries', () => {
  let alarmsApp: TestContext;
  let server: http.Server;
  let answers: number[] = [];
  let url: string;

  beforeAll(async () => {
    alarmsApp = await createTestApp(
      { METRICS_TOKEN: TOKEN },
      {
        settings: {
          alarmNotify: { timeoutMs: 1_000, maxAttempts: 3, backoffMs: 60_000, allowNetworks: '127.0.0.0/8' },
        },
      },
    );
    server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(answers.shift() ?? 200).end('ok'));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  });
  afterAll(async () => {
    await alarmsApp?.services.alarms.stop();
    await alarmsApp?.close();
    await new Promise((resolve) => server.close(resolve));
  });

  it('counts an alarm raised and cleared, and its deliveries: one ok, one to be retried', async () => {
    const q = await createProject(alarmsApp);
    const type = expectOk(await q.api.post('/api/v1/device_type', { name: 'Sensor' }));
    const d = expectOk(await q.api.post('/api/v1/device', { name: 'boiler', type: type.id }));
    expectOk(
      await q.api.post('/api/v1/alarm_rule', {
        name: 'hot',
        device_type_id: type.id,
        level: 2,
        condition: { kind: 'attribute', identifier: 'temp', op: '>', value: 30 },
      }),
    );
    expectOk(await q.api.post('/api/v1/notification_target', { name: 'ops', url }));
    const identity = (await alarmsApp.services.deviceAuth.authenticate(
      q.project.project_key,
      expectOk(await q.api.get(`/api/v1/device/${d.id}/certificate`)).access_token,
    ))!;
    const before = await scrape(alarmsApp);
    answers = [200, 503];
    await alarmsApp.services.currentValues.report(identity, { temp: 35 });
    await alarmsApp.services.alarms.idle();
    await alarmsApp.services.currentValues.report(identity, { temp: 20 });
    await alarmsApp.services.alarms.idle();
    const after = await scrape(alarmsApp);
    const delta = (name: string, labels: Record<string, string> = {}) =>
      value(after, name, labels) - value(before, name, labels);
    expect(delta('iot_alarms_raised_total')).toBe(1);
    expect(delta('iot_alarms_cleared_total')).toBe(1);
    expect(delta('iot_webhook_deliveries_total', { result: 'ok' })).toBe(1);
    expect(delta('iot_webhook_deliveries_total', { result: 'retried' })).toBe(1);
    expect(delta('iot_webhook_deliveries_total', { result: 'failed' })).toBe(0);
  });
});
