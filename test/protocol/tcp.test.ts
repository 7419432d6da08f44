import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createAdmission } from '../../mqtt-broker/core/admission.ts';
import type { TcpListener, TcpListenerOptions } from '../../mqtt-broker/tcp/listener.ts';
import type { DomainEvents } from '../../src/domain/events/event-bus.ts';
import {
  createProject,
  createTestApp,
  expectFailure,
  expectOk,
  type ProjectFixture,
  type TestContext,
} from '../helpers/app.ts';
import { addDeviceType, addDeviceWithToken, captureEvents } from '../helpers/factories.ts';
import { startTestTcpListener } from '../helpers/broker.ts';
import { until } from '../helpers/wait.ts';

/**
 * The raw TCP listener on real sockets (device-protocol.md §6): login, framing, heartbeats, pushes,
 * timeouts and misbehaving clients next to a well-behaved device.
 */
const GAP = 30;
const MAX_MESSAGE = 2048;
const RATE = 20;

let ctx: TestContext;
let p: ProjectFixture;
/** Generous timeouts: the tests of ordinary traffic. */
let main: TcpListener;
let mainPort: number;
/** Short timeouts: logins, silence and dead links. */
let strict: TcpListener;
let strictPort: number;
const sockets: net.Socket[] = [];

/** Several listeners over one app (each its own timeouts): startTestTcpListener rather than startAppWithBroker. */
async function listener(extra: Partial<TcpListenerOptions>): Promise<[TcpListener, number]> {
  const { tcp, port } = await startTestTcpListener(ctx, {
    frameGapMs: GAP,
    maxMessageSize: MAX_MESSAGE,
    rateLimit: RATE,
    ...extra,
  });
  return [tcp, port];
}

beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx);
  [main, mainPort] = await listener({ loginTimeoutMs: 10_000, idleTimeoutMs: 60_000, jsonStallMs: 300 });
  [strict, strictPort] = await listener({ loginTimeoutMs: 300, idleTimeoutMs: 400, jsonStallMs: 300 });
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await main?.close();
  await strict?.close();
  await ctx?.close();
});

interface Device {
  id: string;
  token: string;
  login: string;
}

async function newType(body: Record<string, unknown> = {}, streams: Array<Record<string, unknown>> = []) {
  return (await addDeviceType(p.api, { name: 'dtu', conn_protocol: 'tcp', ...body }, streams)).id;
}

async function newDevice(type?: string): Promise<Device> {
  const d = await addDeviceWithToken(p, { name: 'dtu', type });
  return { ...d, login: `${p.project.project_key}&${d.token}` };
}

/** A raw client: what it received, and whether the server closed it. */
interface Client {
  socket: net.Socket;
  received: Buffer[];
  closed: Promise<void>;
  isClosed: () => boolean;
  write(data: string | Buffer): Promise<void>;
}

async function open(port = mainPort): Promise<Client> {
  const socket = net.connect(port, '127.0.0.1');
  sockets.push(socket);
  socket.setNoDelay(true);
  socket.on('error', () => {});
  const received: Buffer[] = [];
  socket.on('data', (b) => received.push(b));
  let done = false;
  const closed = new Promise<void>((resolve) => socket.once('close', () => ((done = true), resolve())));
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return {
    socket,
    received,
    closed,
    isClosed: () => done,
    write: (data) =>
      new Promise<void>((resolve) => (socket.destroyed ? resolve() : socket.write(data, () => resolve()))),
  };
}

/** A pause the test is about (a silence longer than a frame gap, a pace), never a wait for something to happen. */
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Logs a device in and waits until its session is registered. */
async function login(d: Device, port = mainPort, suffix = '\r\n'): Promise<Client> {
  const c = await open(port);
  await c.write(d.login + suffix);
  await until(() => ctx.services.sessions.get(d.id)?.transport === 'tcp' && !c.isClosed(), 'the TCP session');
  return c;
}

type Item = { direction: string; transport: string; hex: string; data: string; format: string; size: number };
async function recorded(d: Device, identifier = 'stream'): Promise<Item[]> {
  await ctx.services.dataStreams.flush();
  const page = expectOk(await p.api.get(`/api/v1/device/${d.id}/data/${identifier}/messages?page_records=100`));
  return [...page.items].reverse();
}
async function recordedCount(d: Device, n: number, identifier = 'stream') {
  let items: Item[] = [];
  await until(async () => (items = await recorded(d, identifier)).length >= n, `${n} recorded messages`);
  return items;
}

const capture = <K extends keyof DomainEvents>(name: K) => captureEvents(ctx.services, name);

const push = (d: Device, body: Record<string, unknown>, identifier = 'stream') =>
  p.api.post(`/api/v1/control/device/${d.id}/data/${identifier}/set?push_mode=tcp`, body);

describe('login', () => {
  it('logs a device in with <project key>&<access token>\\r\\n: online over tcp, nothing sent back', async () => {
    const d = await newDevice();
    const online = capture('device.online');
    const c = await login(d);
    online.off();
    expect(online.seen).toEqual([
      { projectId: p.project.id, deviceId: d.id, transport: 'tcp', ts: expect.any(Number) },
    ]);
    await ctx.services.presence.flush();
    expect(expectOk(await p.api.get(`/api/v1/device/${d.id}`)).online).toBe(true);
    // The first bytes the device receives are those of a push sent now: the login answered nothing.
    expectOk(await push(d, { type: 'text', msg: 'first' }));
    await until(() => Buffer.concat(c.received).length >= 5, 'the push');
    expect(Buffer.concat(c.received).toString()).toBe('first');
    const offline = capture('device.offline');
    c.socket.end();
    await until(() => offline.seen.length > 0, 'offline');
    offline.off();
    expect(offline.seen[0]).toMatchObject({ deviceId: d.id, transport: 'tcp', reason: 'disconnect' });
    expect(ctx.services.sessions.isOnline(d.id)).toBe(false);
    await c.closed;
    expect(Buffer.concat(c.received).toString()).toBe('first');
  });

  it('accepts a login without a newline (ended by a pause), and data right after a newline in the same packet', async () => {
    const bare = await newDevice();
    const c = await open();
    await c.write(bare.login);
    await until(() => ctx.services.sessions.isOnline(bare.id), 'login by pause');
    await c.write(Buffer.from([0xaa, 0xbb]));
    expect((await recordedCount(bare, 1)).map((m) => m.hex)).toEqual(['aabb']);

    const eager = await newDevice();
    const e = await open();
    await e.write(`${eager.login}\nHELLO`);
    expect((await recordedCount(eager, 1)).map((m) => m.data)).toEqual([Buffer.from('HELLO').toString('hex')]);
  });

  it('closes a bad or malformed login without a byte', async () => {
    const d = await newDevice();
    const failures = main.stats().loginFailures;
    for (const text of [
      `${p.project.project_key}&wrong-token\r\n`,
      `nope&${d.token}\n`,
      `${d.token}\n`,
      `${p.project.project_key} & ${d.token}\n`,
      '\r\n',
    ]) {
      const c = await open();
      await c.write(text);
      await c.closed;
      expect(c.received).toEqual([]);
    }
    expect(main.stats().loginFailures).toBe(failures + 5);
    expect(ctx.services.sessions.isOnline(d.id)).toBe(false);
  });

  it('closes a link that sends nothing, or too little, within the login timeout', async () => {
    const before = strict.stats().loginTimeouts;
    const silent = await open(strictPort);
    const started = Date.now();
    await silent.closed;
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(strict.stats().loginTimeouts).toBe(before + 1);
  });

  it('a second login of the same device closes the first; the device stays online', async () => {
    const d = await newDevice();
    const first = await login(d);
    const offline = capture('device.offline');
    const online = capture('device.online');
    const second = await open();
    await second.write(`${d.login}\r\n`);
    await first.closed;
    await until(() => online.seen.length === 1, 'the second session');
    expect(ctx.services.sessions.isOnline(d.id)).toBe(true);
    expectOk(await push(d, { type: 'text', msg: 'to the second' }));
    await until(() => second.received.length > 0, 'the push on the second link');
    expect(Buffer.concat(second.received).toString()).toBe('to the second');
    expect(first.received).toEqual([]);
    offline.off();
    online.off();
    expect(offline.seen).toEqual([]);
  });

  it('closes the link when the access token is reset', async () => {
    const d = await newDevice();
    const c = await login(d);
    const offline = capture('device.offline');
    expectOk(await p.api.post(`/api/v1/device/${d.id}/certificate/reset`));
    await c.closed;
    await until(() => offline.seen.length > 0, 'offline');
    offline.off();
    expect(offline.seen[0]).toMatchObject({ deviceId: d.id, reason: 'kicked' });
  });
});

describe('bytes both ways', () => {
  it('records device bytes byte-exact as one message per burst (TCP bytes → recorded hex)', async () => {
    const d = await newDevice();
    const c = await login(d);
    const frame = Buffer.from('01 03 00 00 00 02 c4 0b 00 ff 0a 0d 7b'.replace(/ /g, ''), 'hex');
    await c.write(frame.subarray(0, 5));
    await c.write(frame.subarray(5));
    // Recorded: the gap has ended the first message, so the next byte starts another.
    const items = await recordedCount(d, 1);
    await c.write(Buffer.from([0x00]));
    const all = await recordedCount(d, 2);
    expect(items[0]).toMatchObject({
      direction: 'up',
      transport: 'tcp',
      format: 'hex',
      hex: frame.toString('hex'),
      size: frame.length,
    });
    expect(all.map((m) => m.hex)).toEqual([frame.toString('hex'), '00']);
    await ctx.services.presence.flush();
    expect(expectOk(await p.api.get(`/api/v1/device/${d.id}`)).active.data).toEqual(expect.any(Number));
  });

  it('writes pushed bytes to the socket exactly (API push → TCP bytes) and records them as sent', async () => {
    const d = await newDevice();
    const c = await login(d);
    expectOk(await push(d, { type: 'hex', msg: '01 03 01 FF 00 0C 74 03' }));
    await until(() => Buffer.concat(c.received).length === 8, 'the hex bytes');
    expect(Buffer.concat(c.received).toString('hex')).toBe('010301ff000c7403');
    c.received.length = 0;
    expectOk(await push(d, { type: 'text', msg: '温度\r\n' }));
    expectOk(await push(d, { type: 'json', msg: { relay: true } }));
    const expected = Buffer.concat([Buffer.from('温度\r\n'), Buffer.from('{"relay":true}')]);
    await until(() => Buffer.concat(c.received).length === expected.length, 'the text and json bytes');
    expect(Buffer.concat(c.received).equals(expected)).toBe(true);
    const items = await recorded(d);
    expect(items.map((m) => [m.direction, m.transport, m.hex])).toEqual([
      ['down', 'tcp', '010301ff000c7403'],
      ['down', 'tcp', Buffer.from('温度\r\n').toString('hex')],
      ['down', 'tcp', Buffer.from('{"relay":true}').toString('hex')],
    ]);
  });

  it('refuses a push to a TCP device over mqtt, and to a disconnected one', async () => {
    const d = await newDevice();
    const c = await login(d);
    expect(
      expectFailure(await p.api.post(`/api/v1/control/device/${d.id}/data/stream/set`, { type: 'text', msg: 'x' }), 422)
        .message,
    ).toBe('Device is not connected over mqtt');
    c.socket.destroy();
    await until(() => !ctx.services.sessions.isOnline(d.id), 'offline');
    expect(expectFailure(await push(d, { type: 'text', msg: 'x' }), 422).message).toBe('Device is offline');
  });

  it('cuts a burst longer than the maximum message into messages of the maximum', async () => {
    const d = await newDevice();
    const c = await login(d);
    const bytes = randomBytes(MAX_MESSAGE * 2 + 100);
    await c.write(bytes);
    const items = await recordedCount(d, 3);
    expect(items.map((m) => m.size)).toEqual([MAX_MESSAGE, MAX_MESSAGE, 100]);
    expect(items.map((m) => m.hex).join('')).toBe(bytes.toString('hex'));
  });

  it('fails a push to a device that does not read once its buffers are full, and keeps serving others', async () => {
    const [tight, port] = await listener({ maxWriteBuffer: 64 * 1024 });
    try {
      const d = await newDevice();
      const c = await login(d, port);
      c.socket.pause();
      const chunk = 'ab'.repeat(64 * 1024);
      let refusal: { message: string } | undefined;
      for (let i = 0; i < 2_000 && !refusal; i++) {
        const res = await push(d, { type: 'hex', msg: chunk });
        if (res.body.result === false) refusal = res.body;
      }
      expect(refusal).toMatchObject({ errcode: 422, message: expect.stringMatching(/not reading/) });
      const other = await newDevice();
      const o = await login(other, port);
      expectOk(await push(other, { type: 'text', msg: 'fine' }));
      await until(() => Buffer.concat(o.received).toString() === 'fine', 'the other device');
    } finally {
      await tight.close();
    }
  });
});

describe('stream settings of the device type', () => {
  it('frames a JSON stream by value however it is split, and maps objects into attributes', async () => {
    const t = await newType({}, [
      { identifier: 'telemetry', format: 'json', tcp_bound: true, map_to_attributes: true },
    ]);
    const d = await newDevice(t);
    const c = await login(d);
    await c.write('{"temp":');
    await pause(GAP * 4);
    await c.write('21.5,"note":"a}b"}{"hum"');
    await pause(GAP * 2);
    await c.write(':40}\r\n[1,2]');
    const items = await recordedCount(d, 3, 'telemetry');
    expect(items.map((m) => [m.format, m.data])).toEqual([
      ['json', '{"temp":21.5,"note":"a}b"}'],
      ['json', '{"hum":40}'],
      ['json', '[1,2]'],
    ]);
    await until(
      async () => (await ctx.services.currentValues.get(p.project.id, d.id)).hum === 40,
      'the mapped attributes',
    );
    expect(await ctx.services.currentValues.get(p.project.id, d.id)).toEqual({ temp: 21.5, note: 'a}b', hum: 40 });
  });

  it('drops garbage and oversized values on a JSON stream and keeps the link and the values around them', async () => {
    const t = await newType({}, [{ identifier: 'j', format: 'json', tcp_bound: true }]);
    const d = await newDevice(t);
    const c = await login(d);
    const before = main.stats();
    await c.write(`{"n":1}\x00\xff garbage ]]{"n":2}{"big":"${'x'.repeat(MAX_MESSAGE)}"}{"n":3}`);
    const items = await recordedCount(d, 3, 'j');
    expect(items.map((m) => m.data)).toEqual(['{"n":1}', '{"n":2}', '{"n":3}']);
    await until(() => main.stats().dropped.not_json > before.dropped.not_json, 'the garbage counted');
    expect(main.stats().oversized).toBe(before.oversized + 1);
    expect(c.isClosed()).toBe(false);
  });

  it('drops an incomplete JSON value that stalls', async () => {
    const t = await newType({}, [{ identifier: 'j', format: 'json', tcp_bound: true }]);
    const d = await newDevice(t);
    const c = await login(d);
    const stalled = main.stats().stalled;
    await c.write('{"half":');
    await until(() => main.stats().stalled === stalled + 1, 'the stall');
    await c.write('{"whole":1}');
    expect((await recordedCount(d, 1, 'j')).map((m) => m.data)).toEqual(['{"whole":1}']);
  });

  it('drops the heartbeat (never recorded) and uses the type frame gap', async () => {
    const t = await newType({ tcp_heartbeat: 'PING', tcp_frame_gap_ms: 2_000 }, [
      { identifier: 'serial', format: 'text', tcp_bound: true },
    ]);
    const d = await newDevice(t);
    const c = await login(d);
    const beats = main.stats().heartbeats;
    await c.write('PING');
    await until(() => main.stats().heartbeats === beats + 1, 'the heartbeat');
    await c.write('PING\r\n');
    await until(() => main.stats().heartbeats === beats + 2, 'the heartbeat with CRLF');
    // 60 ms apart is within the type's 2 s gap (the server default here is 30 ms): one message.
    await c.write('t=21');
    await pause(60);
    await c.write(';h=40');
    const items = await recordedCount(d, 1, 'serial');
    expect(items.map((m) => [m.format, m.data])).toEqual([['text', 't=21;h=40']]);
    // The next bytes are the next message: nothing else came between.
    await c.write('t=22');
    expect((await recordedCount(d, 2, 'serial')).map((m) => m.data)).toEqual(['t=21;h=40', 't=22']);
  });
});

describe('timeouts (short settings)', () => {
  it('keeps a link alive with heartbeats and closes it after the idle timeout', async () => {
    const t = await newType({ tcp_heartbeat: 'hb' });
    const d = await newDevice(t);
    const c = await login(d, strictPort);
    // Heartbeats for twice the idle timeout (400 ms), each counted before the next is sent.
    const beats = strict.stats().heartbeats;
    const started = Date.now();
    for (let i = 1; Date.now() - started < 800; i++) {
      await pause(100);
      await c.write('hb');
      await until(() => strict.stats().heartbeats >= beats + i, 'the heartbeat');
    }
    expect(c.isClosed()).toBe(false);
    const idle = strict.stats().idleTimeouts;
    const offline = capture('device.offline');
    await c.closed;
    expect(strict.stats().idleTimeouts).toBe(idle + 1);
    await until(() => offline.seen.length > 0, 'offline');
    offline.off();
    expect(offline.seen[0]).toMatchObject({ deviceId: d.id, transport: 'tcp' });
    expect(await recorded(d)).toEqual([]);
  });
});

describe('misbehaving clients next to a well-behaved device', () => {
  /** A device that sends a frame once its previous one is stored (the gap ended it), and checks every one is recorded. */
  async function wellBehaved(port: number, frames: number) {
    const d = await newDevice();
    const c = await login(d, port);
    const stored = capture('device.data');
    try {
      for (let i = 0; i < frames; i++) {
        await c.write(Buffer.from([i]));
        await until(() => stored.seen.filter((e) => e.deviceId === d.id).length > i, `frame ${i}`);
      }
    } finally {
      stored.off();
    }
    const items = await recordedCount(d, frames);
    expect(items.map((m) => m.hex)).toEqual(Array.from({ length: frames }, (_, i) => Buffer.from([i]).toString('hex')));
    return c;
  }

  it('slow-loris logins are closed by the login timeout or pause while a device works', async () => {
    const loris = await Promise.all(Array.from({ length: 20 }, () => open(strictPort)));
    const drip = setInterval(() => {
      for (const l of loris) if (!l.isClosed()) l.socket.write('a');
    }, 10);
    try {
      await wellBehaved(strictPort, 5);
      await Promise.all(loris.map((l) => l.closed));
      expect(loris.every((l) => l.received.length === 0)).toBe(true);
    } finally {
      clearInterval(drip);
    }
  });

  it('past the pending limit the oldest waiting connection of the address is closed; logged-in devices and new logins are unaffected', async () => {
    const [capped, port] = await listener({
      loginTimeoutMs: 10_000,
      admission: createAdmission({ pendingPerAddress: 3 }),
    });
    try {
      const d = await newDevice();
      const working = await login(d, port);
      const silent: Client[] = [];
      for (let i = 0; i < 3; i++) {
        silent.push(await open(port));
        await until(() => capped.stats().connections === 2 + i, 'the accepted connection');
      }
      // The fourth waiting connection of 127.0.0.1 (a device logging in) closes the oldest one.
      const other = await newDevice();
      const again = await login(other, port);
      await silent[0]!.closed;
      expect(silent.slice(1).some((c) => c.isClosed())).toBe(false);
      expect(working.isClosed()).toBe(false);
      expect(again.isClosed()).toBe(false);
      expect(capped.stats()).toMatchObject({ loginsBusy: 1, connections: 4, devices: 2 });
    } finally {
      await capped.close();
    }
  });

  it('binary garbage instead of a login is closed; a login line that never ends is cut at the limit', async () => {
    const garbage = await Promise.all(Array.from({ length: 10 }, () => open()));
    for (const g of garbage) await g.write(randomBytes(4096));
    const endless = await open();
    await endless.write('k'.repeat(600));
    const good = wellBehaved(mainPort, 5);
    await Promise.all([...garbage, endless].map((g) => g.closed));
    await good;
    expect([...garbage, endless].every((g) => g.received.length === 0)).toBe(true);
  });

  it('a flooding device is held back (its messages stored, none dropped) and then closed; the good device loses nothing', async () => {
    const t = await newType({}, [{ identifier: 'j', format: 'json', tcp_bound: true }]);
    const flooder = await newDevice(t);
    const f = await login(flooder);
    const before = main.stats();
    const good = wellBehaved(mainPort, 8);
    const value = Buffer.from('{"x":1}'.repeat(1000));
    for (let i = 0; i < 50 && !f.isClosed(); i++) {
      await f.write(value);
      await pause(5);
    }
    await f.closed;
    await good;
    const after = main.stats();
    expect(after.floods).toBe(before.floods + 1);
    // The burst goes at once; then every message the limiter holds (up to 10 s of the rate) waits for
    // its tokens and is stored; the one beyond closes the link.
    const held = after.rateLimited - before.rateLimited;
    expect(held).toBeGreaterThanOrEqual(RATE * 10 - 1);
    await vi.waitFor(
      async () => {
        await ctx.services.dataStreams.flush();
        const page = expectOk(await p.api.get(`/api/v1/device/${flooder.id}/data/j/messages?page_records=1`));
        expect(page.total).toBe(RATE * 2 + held);
      },
      { timeout: 15_000, interval: 200 },
    );
  });

  it('a half-open link (peer silent after login) is closed by the idle timeout', async () => {
    const d = await newDevice();
    const c = await login(d, strictPort);
    const good = wellBehaved(strictPort, 3);
    await c.closed;
    await good;
    await until(() => !ctx.services.sessions.isOnline(d.id), 'offline');
  });
});

describe('graceful close', () => {
  it('closes every link and sets the devices offline', async () => {
    const [l, port] = await listener({});
    const a = await newDevice();
    const b = await newDevice();
    const ca = await login(a, port);
    const cb = await login(b, port);
    const offline = capture('device.offline');
    await l.close();
    await Promise.all([ca.closed, cb.closed]);
    offline.off();
    expect(offline.seen.map((e) => e.deviceId).sort()).toEqual([a.id, b.id].sort());
    expect(l.stats().connections).toBe(0);
    const late = net.connect(port, '127.0.0.1');
    late.on('error', () => {});
    await new Promise((resolve) => late.once('close', resolve));
  });
});
