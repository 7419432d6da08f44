import net, { type AddressInfo } from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { listenTestApp, startTestBroker, type TestBroker } from '../helpers/broker.ts';
import {
  client,
  createProject,
  createTestApp,
  expectOk,
  type ProjectFixture,
  type TestContext,
} from '../helpers/app.ts';
import { addDeviceWithToken } from '../helpers/factories.ts';
import { connectDevice } from '../helpers/mqtt.ts';
import { openSse, parseBlock, type SseStream } from '../helpers/sse.ts';

/**
 * Live events over HTTP, `GET /api/v1/events` (http-api.md §4.14): the application-subscription messages
 * of device-protocol.md §9 as Server-Sent Events, scoped like the API, bounded, and ended by expiry,
 * revocation and shutdown. A real server socket (port 0), real MQTT devices, fetch as the reader.
 */
const KEEPALIVE_MS = 200;
const PER_PROJECT = 4;
const PER_ADDRESS = 8;
const PER_PRINCIPAL = 3;
const QUEUE_BYTES = 64 * 1024;

let ctx: TestContext;
let tb: TestBroker;
let base: string;
const streams: SseStream[] = [];
const devices: MqttClient[] = [];

beforeAll(async () => {
  ctx = await createTestApp({
    EVENTS_KEEPALIVE_MS: KEEPALIVE_MS,
    EVENTS_STREAMS_PER_PROJECT: PER_PROJECT,
    EVENTS_STREAMS_PER_ADDRESS: PER_ADDRESS,
    EVENTS_STREAMS_PER_PRINCIPAL: PER_PRINCIPAL,
    EVENTS_QUEUE_BYTES: QUEUE_BYTES,
  });
  base = await listenTestApp(ctx);
  tb = await startTestBroker(ctx);
});
// Every test starts with no stream open (they all come from one address).
afterEach(async () => {
  for (const s of streams.splice(0)) s.close();
  await expect.poll(() => ctx.app.eventStreams.count()).toBe(0);
});
afterAll(async () => {
  for (const s of streams) s.close();
  for (const d of devices) d.end(true);
  await tb?.close();
  // fetch (undici) may hold a connection it opened and never sent a request on; the server's header
  // timeout would end it, after this hook's. Every stream is closed by now (afterEach).
  ctx?.app.server.closeAllConnections();
  await ctx?.close();
});

async function open(token: string | undefined, query = '') {
  const s = await openSse(`${base}/api/v1/events${query}`, token);
  streams.push(s);
  return s;
}
const device = async (p: ProjectFixture, name: string) => ({ ...(await addDeviceWithToken(p, { name })), name });
async function connect(p: ProjectFixture, d: { token: string }) {
  return connectDevice(tb.url, { token: d.token, projectKey: p.project.project_key }, {}, devices);
}
async function customer(p: ProjectFixture, account: string, bind: string[]) {
  const c = expectOk(await p.api.post('/api/v1/customer', { name: account, account, password: `${account}-secret-1` }));
  if (bind.length) expectOk(await p.api.post(`/api/v1/customer/${c.id}/devices`, { devices: bind }));
  const login = expectOk(
    await client(ctx.app).post('/api/v1/customer_login', {
      app_id: p.project.app.app_id,
      account,
      password: `${account}-secret-1`,
    }),
  );
  return { id: c.id as string, token: login.access_token as string };
}
const report = async (p: ProjectFixture, d: { token: string }, attributes: Record<string, unknown>) =>
  ctx.services.currentValues.report(
    (await ctx.services.deviceAuth.authenticate(p.project.project_key, d.token))!,
    attributes,
  );
const names = (s: SseStream) => s.events.map((e) => `${e.event} ${e.data.device?.name ?? ''}`.trim());

describe('GET /api/v1/events', () => {
  it('streams what a real MQTT device reports as the attributes payload of application subscriptions', async () => {
    const p = await createProject(ctx, 'sse-basic');
    const pump = await device(p, 'pump');
    const s = await open(p.appToken);
    expect(s.status).toBe(200);
    expect(s.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(s.headers.get('cache-control')).toBe('no-cache, no-transform');

    const dev = await connect(p, pump);
    await dev.publishAsync('attributes', JSON.stringify({ temp: 21.5, on: true }), { qos: 1 });
    await dev.publishAsync('event/report/1', JSON.stringify({ method: 'door', params: { open: 1 } }), { qos: 1 });
    await expect.poll(() => s.events.map((e) => e.event)).toEqual(['online', 'attributes', 'event']);
    const [online, attrs, event] = s.events;
    expect(online).toEqual({
      id: '1',
      event: 'online',
      data: { device: { id: pump.id, name: 'pump' }, online: true, ts: expect.any(Number) },
    });
    expect(attrs).toEqual({
      id: '2',
      event: 'attributes',
      data: {
        device: { id: pump.id, name: 'pump' },
        attributes: { temp: 21.5, on: true },
        attr_type: 'report',
        ts: expect.any(Number),
      },
    });
    expect(event!.data).toEqual({
      device: { id: pump.id, name: 'pump' },
      method: 'door',
      params: { open: 1 },
      ts: expect.any(Number),
    });

    // The MQTT subscribers of the view key get the same payload, built once for both.
    const key = expectOk(await p.api.post('/api/v1/view_key', {}));
    const viewer = await mqtt.connectAsync(tb.url, {
      username: key.view_key,
      password: key.view_secret,
      reconnectPeriod: 0,
    });
    devices.push(viewer);
    const seen: string[] = [];
    viewer.on('message', (_t, payload) => seen.push(payload.toString()));
    await viewer.subscribeAsync(`${key.view_key}/+/attributes`);
    await dev.publishAsync('attributes', JSON.stringify({ temp: 22 }), { qos: 1 });
    await expect.poll(() => seen.length).toBe(1);
    await expect.poll(() => s.events.length).toBe(4);
    expect(JSON.parse(seen[0]!)).toEqual(s.events[3]!.data);

    // Offline, a command reply and data messages carry their kinds too.
    await dev.endAsync();
    await expect.poll(() => s.events.at(-1)?.data).toMatchObject({ online: false });
  });

  it('sends a keepalive comment and filters by kinds and devices', async () => {
    const p = await createProject(ctx, 'sse-filters');
    const a = await device(p, 'a');
    const b = await device(p, 'b');
    const onlyOnline = await open(p.appToken, '?kinds=online');
    const onlyB = await open(p.appToken, `?device=${b.id}`);
    const bAttributes = await open(p.appToken, `?kinds=attributes,attributes&device=${b.id},${b.id}`);
    await report(p, a, { x: 1 });
    await report(p, b, { x: 2 });
    const devA = await connect(p, a);
    const devB = await connect(p, b);
    await devA.endAsync();
    await devB.endAsync();
    await expect.poll(() => names(onlyOnline)).toEqual(['online a', 'online b', 'online a', 'online b']);
    await expect.poll(() => names(onlyB)).toEqual(['attributes b', 'online b', 'online b']);
    expect(names(bAttributes)).toEqual(['attributes b']);
    await expect.poll(() => onlyOnline.comments.filter((c) => c === 'ping').length).toBeGreaterThanOrEqual(1);
    expect(onlyOnline.comments[0]).toBe('connected');
  });

  it('answers bad filters, unknown devices and devices of other projects in the envelope', async () => {
    const p = await createProject(ctx, 'sse-bad');
    const other = await createProject(ctx, 'sse-bad-other');
    const theirs = await device(other, 'theirs');
    const bad = await open(p.appToken, '?kinds=attributes,secrets');
    expect(bad.status).toBe(200);
    expect(bad.body).toMatchObject({
      result: false,
      errcode: 400,
      errors: [{ path: expect.stringMatching(/^query\.kinds/) }],
    });
    const many = Array.from({ length: 101 }, (_, i) => `d${i}`).join(',');
    expect((await open(p.appToken, `?device=${many}`)).body).toMatchObject({
      result: false,
      errcode: 400,
      errors: [{ path: 'query.device' }],
    });
    expect((await open(p.appToken, `?device=${theirs.id}`)).body).toEqual({
      result: false,
      errcode: 404,
      message: 'Device not found',
      errors: [],
    });
    expect((await open(p.appToken, '?device=nope')).body).toMatchObject({ result: false, errcode: 404 });
    const anon = await open(undefined);
    expect(anon.status).toBe(401);
    expect(anon.body).toMatchObject({ result: false, errcode: 401 });
    expect(ctx.app.eventStreams.count(p.project.id)).toBe(0);
  });

  it('shows a customer only its bound devices, and follows binding changes', async () => {
    const p = await createProject(ctx, 'sse-customers');
    const mine = await device(p, 'mine');
    const later = await device(p, 'later');
    const hers = await device(p, 'hers');
    const alice = await customer(p, 'alice', [mine.id]);
    await customer(p, 'carol', [hers.id]);
    // A device that is not hers does not exist for her.
    expect((await open(alice.token, `?device=${hers.id}`)).body).toMatchObject({ result: false, errcode: 404 });
    const s = await open(alice.token);
    const filtered = await open(alice.token, `?device=${mine.id}`);
    await report(p, mine, { v: 1 });
    await report(p, hers, { v: 2 });
    await report(p, later, { v: 3 });
    await expect.poll(() => names(s)).toEqual(['attributes mine']);
    // Bound while the stream is open: its events arrive from then on; unbound: they stop.
    expectOk(await p.api.post(`/api/v1/customer/${alice.id}/devices`, { devices: [later.id] }));
    await report(p, later, { v: 4 });
    await expect.poll(() => names(s)).toEqual(['attributes mine', 'attributes later']);
    expectOk(await p.api.post(`/api/v1/customer/${alice.id}/devices_remove`, { devices: [mine.id] }));
    await report(p, mine, { v: 5 });
    await report(p, later, { v: 6 });
    await report(p, hers, { v: 7 });
    await expect.poll(() => s.events.map((e) => e.data.attributes.v)).toEqual([1, 4, 6]);
    expect(filtered.events.map((e) => e.data.attributes.v)).toEqual([1]);
    expect(s.events.some((e) => e.data.device.id === hers.id)).toBe(false);
  });

  it("never carries another project's events", async () => {
    const a = await createProject(ctx, 'sse-tenant-a');
    const b = await createProject(ctx, 'sse-tenant-b');
    const da = await device(a, 'a-dev');
    const db = await device(b, 'b-dev');
    const sa = await open(a.appToken);
    const sb = await open(b.adminToken);
    await report(b, db, { leak: 1 });
    await report(a, da, { mine: 1 });
    await connect(b, db);
    await expect.poll(() => names(sa)).toEqual(['attributes a-dev']);
    await expect.poll(() => names(sb)).toEqual(['attributes b-dev', 'online b-dev']);
    expect(JSON.stringify(sa.events)).not.toContain('leak');
  });

  it('drops a reader that does not read with a last overflow event; a stream of another project keeps receiving', async () => {
    const slowProject = await createProject(ctx, 'sse-slow');
    const fastProject = await createProject(ctx, 'sse-fast');
    const slowDevice = await device(slowProject, 'chatty');
    const fastDevice = await device(fastProject, 'calm');
    const fast = await open(fastProject.appToken, '?kinds=attributes');

    // A reader that sends its request and never reads.
    const socket = net.connect((ctx.app.server.address() as AddressInfo).port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    socket.write(`GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${slowProject.appToken}\r\n\r\n`);
    await expect.poll(() => ctx.services.liveEvents.listenerCount(slowProject.project.id)).toBe(1);
    socket.pause();
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    const closed = new Promise((r) => socket.once('close', r));

    // Large messages until the server gives up on it (socket buffers first, then QUEUE_BYTES).
    const big = 'x'.repeat(16 * 1024);
    let sent = 0;
    for (; sent < 5_000 && ctx.app.eventStreams.count(slowProject.project.id) > 0; sent++) {
      ctx.services.bus.emit('device.attributes', {
        projectId: slowProject.project.id,
        deviceId: slowDevice.id,
        attributes: { big, n: sent },
        attrType: 'report',
        ts: Date.now(),
      });
      if (sent % 20 === 0) await new Promise((r) => setImmediate(r));
      if (sent % 100 === 0) await report(fastProject, fastDevice, { n: sent });
    }
    expect(ctx.app.eventStreams.count(slowProject.project.id)).toBe(0);
    expect(ctx.services.liveEvents.listenerCount(slowProject.project.id)).toBe(0);
    await expect.poll(() => fast.events.length).toBeGreaterThanOrEqual(Math.floor((sent - 1) / 100) + 1);
    expect(fast.events.every((e) => e.data.device.id === fastDevice.id)).toBe(true);
    await report(fastProject, fastDevice, { after: true });
    await expect.poll(() => fast.events.at(-1)?.data.attributes).toEqual({ after: true });

    // Reading now, it gets what was queued and then the overflow event; then the connection ends.
    socket.resume();
    await closed;
    const text = Buffer.concat(received).toString();
    const tail = text.slice(text.lastIndexOf('event: overflow'));
    const parsed = {
      events: [] as Array<{ event: string; data: unknown; id: string | undefined }>,
      comments: [] as string[],
    };
    parseBlock(tail.slice(0, tail.indexOf('\n\n')), parsed);
    expect(parsed.events).toEqual([{ id: undefined, event: 'overflow', data: { reason: 'overflow' } }]);
  });

  it('refuses streams over the per-project and per-address limits with 429', async () => {
    const p = await createProject(ctx, 'sse-limits');
    // Two principals (app and admin), each under its own limit.
    const open4 = await Promise.all(
      Array.from({ length: PER_PROJECT }, (_, i) => open(i % 2 ? p.adminToken : p.appToken)),
    );
    expect(open4.map((s) => s.status)).toEqual([200, 200, 200, 200]);
    const refused = await open(p.appToken);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(refused.body).toMatchObject({
      result: false,
      errcode: 429,
      message: `Too many event streams open for this project (at most ${PER_PROJECT})`,
    });
    // A closed stream frees its place.
    open4[0]!.close();
    await expect.poll(() => ctx.app.eventStreams.count(p.project.id)).toBe(PER_PROJECT - 1);
    const again = await open(p.appToken);
    expect(again.status).toBe(200);
    for (const s of [...open4, again]) s.close();
    await expect.poll(() => ctx.app.eventStreams.count()).toBe(0);

    // Per address, across projects.
    const projects = await Promise.all([1, 2, 3].map((i) => createProject(ctx, `sse-addr-${i}`)));
    const many = [];
    for (let i = 0; i < PER_ADDRESS; i++) many.push(await open(projects[i % 3]!.appToken));
    expect(many.every((s) => s.status === 200)).toBe(true);
    const over = await open(projects[0]!.appToken);
    expect(over.body).toMatchObject({
      errcode: 429,
      message: `Too many event streams open from this address (at most ${PER_ADDRESS})`,
    });
    for (const s of many) s.close();
    await expect.poll(() => ctx.app.eventStreams.count()).toBe(0);
  });

  it('refuses a principal more than its streams with 429, leaving the rest of the project its allowance', async () => {
    const p = await createProject(ctx, 'sse-principal');
    const mine = await Promise.all(Array.from({ length: PER_PRINCIPAL }, () => open(p.appToken)));
    expect(mine.map((s) => s.status)).toEqual([200, 200, 200]);
    // Another token of the same app is the same principal.
    const login = expectOk(await client(ctx.app).post('/api/v1/access_token', p.project.app));
    const refused = await open(login.access_token);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(refused.body).toMatchObject({
      result: false,
      errcode: 429,
      message: `Too many event streams open for this token's app (at most ${PER_PRINCIPAL})`,
    });
    // The project still has room for others.
    const admin = await open(p.adminToken);
    expect(admin.status).toBe(200);
    mine[0]!.close();
    await expect.poll(() => ctx.app.eventStreams.count(p.project.id)).toBe(PER_PRINCIPAL);
    expect((await open(p.appToken)).status).toBe(200);
  });

  it('removes its listeners when the reader disconnects', async () => {
    const p = await createProject(ctx, 'sse-leak');
    const d = await device(p, 'd');
    const c = await customer(p, 'dave', [d.id]);
    const before = ctx.services.liveEvents.listenerCount();
    const s1 = await open(p.appToken);
    const s2 = await open(c.token, '?kinds=online');
    expect(ctx.services.liveEvents.listenerCount(p.project.id)).toBe(2);
    expect(ctx.services.liveEvents.customerWatchCount()).toBe(1);
    s1.close();
    s2.close();
    await expect.poll(() => ctx.services.liveEvents.listenerCount(p.project.id)).toBe(0);
    expect(ctx.services.liveEvents.customerWatchCount()).toBe(0);
    expect(ctx.app.eventStreams.count(p.project.id)).toBe(0);
    expect(ctx.services.liveEvents.listenerCount()).toBe(before);
    // Nothing is built for the project any more.
    await report(p, d, { x: 1 });
    expect(s1.events).toEqual([]);
  });

  it('ends when the token expires', async () => {
    const p = await createProject(ctx, 'sse-expiry');
    const token = ctx.app.jwt.sign(
      { pid: p.project.id, kind: 'app', sub: p.project.app.app_id, ts: Date.now() },
      { expiresIn: 2 },
    );
    const s = await open(token);
    expect(s.status).toBe(200);
    const started = Date.now();
    await s.ended;
    expect(Date.now() - started).toBeLessThan(2_500);
    expect(s.events.at(-1)).toEqual({ id: undefined, event: 'end', data: { reason: 'expired' } });
    expect(ctx.services.liveEvents.listenerCount(p.project.id)).toBe(0);
  });

  it('ends when its app is deleted, its customer is deleted or its project is deleted', async () => {
    const p = await createProject(ctx, 'sse-revoke');
    const d = await device(p, 'd');
    const extra = expectOk(await p.api.post('/api/v1/app', { name: 'second' }));
    const login = expectOk(await client(ctx.app).post('/api/v1/access_token', extra));
    const c = await customer(p, 'erin', [d.id]);
    const byApp = await open(login.access_token);
    const byCustomer = await open(c.token);
    const byAdmin = await open(p.adminToken);
    expectOk(await p.api.delete(`/api/v1/app/${extra.app_id}`));
    await byApp.ended;
    expect(byApp.events.at(-1)).toEqual({ id: undefined, event: 'end', data: { reason: 'revoked' } });
    expect(byCustomer.isEnded()).toBe(false);
    expectOk(await p.api.delete(`/api/v1/customer/${c.id}`));
    await byCustomer.ended;
    expect(byCustomer.events.at(-1)?.data).toEqual({ reason: 'revoked' });
    expect(byAdmin.isEnded()).toBe(false);
    await ctx.services.projects.delete(p.project.id);
    await byAdmin.ended;
    expect(byAdmin.events.at(-1)?.data).toEqual({ reason: 'revoked' });
    expect(ctx.services.liveEvents.listenerCount(p.project.id)).toBe(0);
  });

  it('does not keep the server from closing', async () => {
    const own = await createTestApp({}, { database: ctx.database });
    await own.app.listen({ port: 0, host: '127.0.0.1' });
    const p = await createProject(own, 'sse-shutdown');
    const s = await openSse(
      `http://127.0.0.1:${(own.app.server.address() as AddressInfo).port}/api/v1/events`,
      p.appToken,
    );
    streams.push(s);
    expect(s.status).toBe(200);
    const started = Date.now();
    await own.app.close();
    expect(Date.now() - started).toBeLessThan(2_000);
    await s.ended;
    expect(s.events.at(-1)?.data).toEqual({ reason: 'shutdown' });
    await own.services.alarms.stop();
    await own.services.ingest.stop();
    await own.services.currentCache.stop();
  });

  it('opens no stream once the server began to stop during its look-ups', async () => {
    const own = await createTestApp({}, { database: ctx.database });
    await own.app.listen({ port: 0, host: '127.0.0.1' });
    const p = await createProject(own, 'sse-close-race');
    const d = expectOk(await p.api.post('/api/v1/device', { name: 'd' }));
    // The device look-up is slow: the server stops while the request waits for it.
    const repo = own.services.liveEventsRepo;
    const original = repo.existingDeviceIds;
    let entered!: () => void;
    const inLookup = new Promise<void>((r) => (entered = r));
    let proceed!: () => void;
    const gate = new Promise<void>((r) => (proceed = r));
    repo.existingDeviceIds = async (...a) => {
      entered();
      await gate;
      return original(...a);
    };
    const listenersBefore = own.services.liveEvents.listenerCount(p.project.id);
    const pending = openSse(
      `http://127.0.0.1:${(own.app.server.address() as AddressInfo).port}/api/v1/events?device=${d.id}`,
      p.appToken,
    );
    await inLookup;
    own.app.eventStreams.closeAll(); // what the server's close does first (preClose)
    proceed();
    const s = await pending;
    streams.push(s);
    expect(s.status).toBe(429);
    expect(s.body).toMatchObject({
      result: false,
      errcode: 429,
      message: 'The server is stopping; open the stream again',
    });
    expect(own.app.eventStreams.count(p.project.id)).toBe(0);
    expect(own.services.liveEvents.listenerCount(p.project.id)).toBe(listenersBefore);
    repo.existingDeviceIds = original;
    own.app.server.closeAllConnections();
    const started = Date.now();
    await own.app.close();
    expect(Date.now() - started).toBeLessThan(2_000);
    await own.services.alarms.stop();
    await own.services.ingest.stop();
    await own.services.currentCache.stop();
  });
});
