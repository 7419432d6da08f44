import { randomBytes } from 'node:crypto';
import net, { type AddressInfo } from 'node:net';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAdmission } from '../../mqtt-broker/core/admission.ts';
import { attachWebSocket } from '../../mqtt-broker/mqtt/websocket.ts';
import { startTestBroker, startTestTcpListener, type TestBroker } from '../helpers/broker.ts';
import { createProject, createTestApp, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';
import { addDeviceWithToken } from '../helpers/factories.ts';

/**
 * Nobody's connections can crowd out anybody else's (mqtt-broker/core/admission.ts): floods of silent
 * sockets and of guessed credentials from one address, with a well-behaved device of another project
 * alongside. Linux routes all of 127/8 to the loopback: the flood comes from 127.0.0.2, the
 * well-behaved clients from 127.0.0.1.
 */
const FLOOD_FROM = '127.0.0.2';
/** Generous: the bound is about another tenant's latency on a loaded 2-core machine. */
const BOUND_MS = 2_000;

let ctx: TestContext;
let victim: ProjectFixture;
const sockets = new Set<net.Socket>();

beforeAll(async () => {
  ctx = await createTestApp();
  victim = await createProject(ctx, 'victim');
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await ctx?.close();
});

const newDevice = (p: ProjectFixture) => addDeviceWithToken(p, { name: 'well-behaved' });

/** A raw socket from `localAddress`; resolves once connected. */
function rawSocket(port: number, localAddress = FLOOD_FROM): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress });
    sockets.add(s);
    s.on('error', () => {});
    s.once('close', () => sockets.delete(s));
    s.once('connect', () => resolve(s)).once('error', reject);
  });
}

/** `n` silent sockets, opened in batches (some may be closed by the server meanwhile). */
async function silentFlood(port: number, n: number, from = FLOOD_FROM): Promise<net.Socket[]> {
  const opened: net.Socket[] = [];
  for (let i = 0; i < n; i += 100) {
    opened.push(...(await Promise.all(Array.from({ length: Math.min(100, n - i) }, () => rawSocket(port, from)))));
  }
  return opened;
}
const stillOpen = (list: net.Socket[]) => list.filter((s) => !s.destroyed).length;

/** The well-behaved device connects, reports at QoS 1 (acknowledged once stored) and leaves: its time. */
async function connectAndReport(url: string, token: string, projectKey: string): Promise<number> {
  const started = performance.now();
  const c = await mqtt.connectAsync(url, {
    username: token,
    password: projectKey,
    reconnectPeriod: 0,
    connectTimeout: 30_000,
  });
  try {
    await c.publishAsync('attributes', JSON.stringify({ t: 21 }), { qos: 1 });
    return performance.now() - started;
  } finally {
    await c.endAsync();
  }
}

describe('silent sockets before CONNECT or login', () => {
  let tb: TestBroker;
  beforeAll(async () => {
    // A long connect timeout: only the pending limits may close the silent sockets here.
    tb = await startTestBroker(ctx, {
      connectTimeoutMs: 120_000,
      admission: createAdmission({ pendingPerAddress: 50, pendingMax: 400 }),
    });
  });
  afterAll(() => tb?.close());

  it('2,000 silent MQTT sockets from one address: only the newest 50 stay open, and another project’s device connects and reports within the bound', async () => {
    const device = await newDevice(victim);
    const flood = await silentFlood(tb.port, 2_000);
    await expect.poll(() => stillOpen(flood), { timeout: 10_000 }).toBeLessThanOrEqual(50);
    // The newest ones are the ones kept.
    expect(flood.slice(-40).every((s) => !s.destroyed)).toBe(true);
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      // The flood goes on while the device works.
      const more = silentFlood(tb.port, 200);
      times.push(await connectAndReport(tb.url, device.token, victim.project.project_key));
      flood.push(...(await more));
    }
    expect(Math.max(...times)).toBeLessThan(BOUND_MS);
    await expect.poll(() => stillOpen(flood), { timeout: 10_000 }).toBeLessThanOrEqual(50);
  });

  it('silent sockets from many addresses stay under the global limit; a newcomer still gets in', async () => {
    const device = await newDevice(victim);
    const flood: net.Socket[] = [];
    for (let k = 3; k < 13; k++) flood.push(...(await silentFlood(tb.port, 50, `127.0.0.${k}`)));
    await expect.poll(() => stillOpen(flood), { timeout: 10_000 }).toBeLessThanOrEqual(400);
    expect(await connectAndReport(tb.url, device.token, victim.project.project_key)).toBeLessThan(BOUND_MS);
  });

  it('a socket that sends no CONNECT is closed after the connect timeout', async () => {
    const quick = await startTestBroker(ctx, { connectTimeoutMs: 300 });
    try {
      const s = await rawSocket(quick.port);
      const started = performance.now();
      await new Promise((resolve) => s.once('close', resolve));
      // Aedes' own default would be 30 s.
      expect(performance.now() - started).toBeLessThan(5_000);
    } finally {
      await quick.close();
    }
  });

  it('1,000 silent sockets on the TCP port from one address do not lock out another project’s DTU', async () => {
    // A listener beside the file's app, which holds `victim` (startAppWithBroker would start another app).
    const { tcp, port } = await startTestTcpListener(ctx, {
      loginTimeoutMs: 120_000,
      admission: createAdmission({ pendingPerAddress: 20 }),
    });
    try {
      const device = await newDevice(victim);
      const flood = await silentFlood(port, 1_000);
      await expect.poll(() => stillOpen(flood), { timeout: 10_000 }).toBeLessThanOrEqual(20);
      const started = performance.now();
      const dtu = await rawSocket(port, '127.0.0.1');
      dtu.write(`${victim.project.project_key}&${device.token}\r\n`);
      await expect.poll(() => ctx.services.sessions.get(device.id)?.transport, { timeout: 10_000 }).toBe('tcp');
      expect(performance.now() - started).toBeLessThan(BOUND_MS);
      // More silent sockets do not close the logged-in DTU.
      flood.push(...(await silentFlood(port, 100)));
      await expect.poll(() => stillOpen(flood), { timeout: 10_000 }).toBeLessThanOrEqual(20);
      expect(dtu.destroyed).toBe(false);
    } finally {
      await tcp.close();
    }
  });
});

describe('MQTT over WebSocket', () => {
  it('behind a trusted proxy the pending limit counts the address the proxy added: one client’s silent sockets do not touch another’s', async () => {
    const admission = createAdmission({ pendingPerAddress: 5 });
    const tb = await startTestBroker(ctx, { connectTimeoutMs: 120_000, admission });
    await ctx.app.listen({ port: 0, host: '127.0.0.1' });
    const closeWs = attachWebSocket(ctx.app.server, tb.broker, { trustProxy: true });
    const url = `ws://127.0.0.1:${(ctx.app.server.address() as AddressInfo).port}/mqtt`;
    // What the client wrote first is not believed: the last entry is the proxy's.
    const silent = (client: string) => {
      const ws = new WebSocket(url, 'mqtt', { headers: { 'x-forwarded-for': `10.9.9.9, ${client}` } });
      ws.on('error', () => {});
      return new Promise<WebSocket>((resolve) => ws.once('open', () => resolve(ws)));
    };
    try {
      const other = await Promise.all(Array.from({ length: 5 }, () => silent('198.51.100.7')));
      const flood: WebSocket[] = [];
      for (let i = 0; i < 20; i++) flood.push(await silent('203.0.113.9'));
      await expect
        .poll(() => flood.filter((w) => w.readyState === WebSocket.OPEN).length, { timeout: 10_000 })
        .toBeLessThanOrEqual(5);
      expect(other.every((w) => w.readyState === WebSocket.OPEN)).toBe(true);
      const device = await newDevice(victim);
      const c = await mqtt.connectAsync(url, {
        username: device.token,
        password: victim.project.project_key,
        reconnectPeriod: 0,
        wsOptions: { headers: { 'x-forwarded-for': '198.51.100.8' } },
      });
      await c.publishAsync('attributes', JSON.stringify({ ws: 1 }), { qos: 1 });
      // Logged in, it no longer counts as pending.
      expect(admission.stats()).toMatchObject({ pending: 10, open: 11 });
      await c.endAsync();
      for (const w of [...other, ...flood]) w.terminate();
    } finally {
      await closeWs();
      await tb.close();
    }
  });
});

/** A CONNECT from `from`: resolves with the CONNACK return code, or -1 when closed without one. */
function connack(port: number, username: string, password: string, from = FLOOD_FROM): Promise<number> {
  return rawSocket(port, from).then(
    (s) =>
      new Promise<number>((resolve) => {
        const parser = mqttPacket.parser({ protocolVersion: 4 });
        parser.on('packet', (p: { cmd: string; returnCode?: number }) => {
          if (p.cmd === 'connack') resolve(p.returnCode ?? -1);
          s.destroy();
        });
        s.on('data', (b) => parser.parse(b));
        s.once('close', () => resolve(-1));
        s.write(
          mqttPacket.generate({
            cmd: 'connect',
            protocolId: 'MQTT',
            protocolVersion: 4,
            clean: true,
            clientId: 'c',
            keepalive: 0,
            username,
            password: Buffer.from(password),
          }),
        );
      }),
    () => -1,
  );
}
/** Random credentials shaped like a viewer's: a 16-character user name and a 20-character password. */
const guess = (port: number) =>
  connack(port, randomBytes(12).toString('base64url').slice(0, 16), randomBytes(15).toString('base64url').slice(0, 20));

describe('guessed credentials', () => {
  it('login attempts are counted per address before any look-up: past the budget even right credentials are refused from that address, not from another', async () => {
    const device = await newDevice(victim);
    const admission = createAdmission({ loginRate: 0.01, loginBurst: 3 });
    const tb = await startTestBroker(ctx, { admission });
    const { tcp, port } = await startTestTcpListener(ctx, { admission });
    try {
      expect(await Promise.all([guess(tb.port), guess(tb.port)])).toEqual([4, 4]);
      expect(await connack(tb.port, device.token, victim.project.project_key)).toBe(0);
      // The budget of 127.0.0.2 is spent, for MQTT and TCP alike.
      expect(await connack(tb.port, device.token, victim.project.project_key)).toBe(4);
      const dtu = await rawSocket(port);
      dtu.write(`${victim.project.project_key}&${device.token}\r\n`);
      // Closed without a session (a login would leave it open and registered).
      await expect.poll(() => dtu.destroyed, { timeout: 10_000 }).toBe(true);
      expect(ctx.services.sessions.get(device.id)?.transport).not.toBe('tcp');
      expect(await connack(tb.port, device.token, victim.project.project_key, '127.0.0.1')).toBe(0);
      expect(admission.stats().loginsLimited).toBe(2);
    } finally {
      await tcp.close();
      await tb.close();
    }
  });

  it('256 parallel CONNECTs with random 16-character user names from one address, again and again: refused, while another project’s device and viewer log in within the bound', async () => {
    const tb = await startTestBroker(ctx, { admission: createAdmission({ loginRate: 20, loginBurst: 50 }) });
    const device = await newDevice(victim);
    const view = expectOk(await victim.api.post('/api/v1/view_key'));
    let running = true;
    const codes = new Map<number, number>();
    const attacker = async () => {
      while (running) {
        const code = await guess(tb.port);
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
    };
    const attackers = Array.from({ length: 256 }, attacker);
    try {
      // The flood is on before the measurement starts.
      await expect.poll(() => [...codes.values()].reduce((a, b) => a + b, 0), { timeout: 30_000 }).toBeGreaterThan(256);
      const times: number[] = [];
      for (let i = 0; i < 5; i++) {
        times.push(await connectAndReport(tb.url, device.token, victim.project.project_key));
        const started = performance.now();
        const viewer = await mqtt.connectAsync(tb.url, {
          username: view.view_key,
          password: view.view_secret,
          reconnectPeriod: 0,
          connectTimeout: 30_000,
        });
        times.push(performance.now() - started);
        await viewer.endAsync();
      }
      expect(Math.max(...times)).toBeLessThan(BOUND_MS);
    } finally {
      running = false;
      await Promise.all(attackers);
      await tb.close();
    }
    // Every guess was refused as bad credentials (return code 4), never let in.
    expect(codes.get(0)).toBeUndefined();
    expect(codes.get(4)).toBeGreaterThan(256);
  }, 120_000);
});
