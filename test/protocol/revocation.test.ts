import net from 'node:net';
import { once } from 'node:events';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startAppWithBroker, type TestBroker } from '../helpers/broker.ts';
import { createProject, deviceWithToken, expectOk, type TestContext } from '../helpers/app.ts';

/**
 * Revocation ends sessions at once (README "Security and limits"): deleting a project, rotating
 * its view secret, disabling or deleting a device close the connections concerned and refuse the old
 * credentials right away (no cached login answers for them), while other tenants go on.
 */
let ctx: TestContext;
let tb: TestBroker;
let tcpPort: number;
let stop: (() => Promise<void>) | undefined;
const clients: MqttClient[] = [];
const sockets: net.Socket[] = [];

beforeAll(async () => {
  ({ ctx, tb, tcpPort, close: stop } = await startAppWithBroker({ tcp: {} }));
});
afterAll(async () => {
  for (const c of clients) c.end(true);
  for (const s of sockets) s.destroy();
  await stop?.();
});

const deviceOf = deviceWithToken;

async function connect(username: string, password: string, opts: IClientOptions = {}) {
  const c = await mqtt.connectAsync(tb.url, { username, password, reconnectPeriod: 0, ...opts });
  clients.push(c);
  return c;
}

/** The CONNACK return code of a login (0 = accepted). */
async function connackOf(username: string, password: string): Promise<number> {
  try {
    const c = await connect(username, password);
    c.end(true);
    return 0;
  } catch (err) {
    return (err as { code?: number }).code ?? -1;
  }
}

async function tcpLogin(projectKey: string, token: string) {
  const socket = net.connect(tcpPort, '127.0.0.1');
  sockets.push(socket);
  await once(socket, 'connect');
  socket.write(`${projectKey}&${token}\r\n`);
  return socket;
}

const isClosed = (c: MqttClient) => !c.connected;

describe('revocation', () => {
  it("deleting a project ends its devices' (MQTT, TCP, gateway and sub-devices) and viewers' sessions and refuses its cached logins at once", async () => {
    const p = await createProject(ctx, 'doomed');
    const other = await createProject(ctx, 'bystander');
    const d = await deviceOf(p);
    const t = await deviceOf(p, { name: 'dtu' });
    const gwType = expectOk(await p.api.post('/api/v1/device_type', { name: 'gw', conn_type: '3' }));
    const subType = expectOk(await p.api.post('/api/v1/device_type', { name: 'sub', conn_type: '2' }));
    const gw = await deviceOf(p, { name: 'gw', type: gwType.id });
    const sub = await deviceOf(p, { name: 'sub', type: subType.id });
    expectOk(await p.api.post(`/api/v1/device/${gw.id}/sub_devices`, { device: sub.id, address: 's1' }));
    const view = expectOk(await p.api.post('/api/v1/view_key', {}));
    const bystander = await deviceOf(other);

    const device = await connect(d.token, p.project.project_key);
    const gateway = await connect(gw.token, p.project.project_key);
    await gateway.publishAsync('gateway/connect', JSON.stringify({ device: 's1' }), { qos: 1 });
    const viewer = await connect(view.view_key, view.view_secret);
    const dtu = await tcpLogin(p.project.project_key, t.token);
    const fine = await connect(bystander.token, other.project.project_key);
    await vi.waitFor(() =>
      expect([d.id, t.id, gw.id, sub.id].every((id) => ctx.services.sessions.isOnline(id))).toBe(true),
    );
    // Logins of the project are cached now (an HTTP report goes through the same cache).
    const http = () =>
      ctx.app.inject({
        method: 'POST',
        url: `/device/v1/${d.token}/attributes`,
        headers: { 'project-key': p.project.project_key },
        payload: { n: 1 },
      });
    expect((await http()).json().result).toBe(1);

    const dtuClosed = once(dtu, 'close');
    await ctx.services.projects.delete(p.project.id);

    await vi.waitFor(() => expect([device, gateway, viewer].every(isClosed)).toBe(true), { timeout: 2_000 });
    await dtuClosed;
    expect([d.id, t.id, gw.id, sub.id].some((id) => ctx.services.sessions.isOnline(id))).toBe(false);
    expect(await connackOf(d.token, p.project.project_key)).toBe(4);
    expect(await connackOf(view.view_key, view.view_secret)).toBe(4);
    const after = await http();
    expect(after.json().result).toBe(0);
    // Another tenant is untouched.
    expect(fine.connected).toBe(true);
    await fine.publishAsync('attributes', JSON.stringify({ n: 1 }), { qos: 1 });
  });

  it('a login checked while its device is disabled does not become a session (MQTT and TCP)', async () => {
    const p = await createProject(ctx, 'overtaken');
    const d = await deviceOf(p);
    const t = await deviceOf(p, { name: 'dtu' });
    // Log-in look-ups answer, then wait: the devices are disabled while the logins are on their way.
    const original = ctx.services.deviceAuth.authenticate;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let waiting = 0;
    ctx.services.deviceAuth.authenticate = async (pk, token) => {
      const identity = await original(pk, token);
      waiting++;
      await gate;
      return identity;
    };
    try {
      const c = mqtt.connect(tb.url, { username: d.token, password: p.project.project_key, reconnectPeriod: 0 });
      clients.push(c);
      c.on('error', () => {});
      const mqttClosed = new Promise<void>((r) => c.once('close', () => r()));
      const dtu = await tcpLogin(p.project.project_key, t.token);
      const dtuClosed = once(dtu, 'close');
      await vi.waitFor(() => expect(waiting).toBe(2));
      expectOk(await p.api.put(`/api/v1/device/${d.id}/info`, { disabled: true }));
      expectOk(await p.api.put(`/api/v1/device/${t.id}/info`, { disabled: true }));
      release();
      await Promise.all([dtuClosed, mqttClosed]);
      expect(ctx.services.sessions.isOnline(d.id)).toBe(false);
      expect(ctx.services.sessions.isOnline(t.id)).toBe(false);
    } finally {
      ctx.services.deviceAuth.authenticate = original;
    }
  });

  it('rotating the view secret disconnects the subscribers of the old one; the old secret is refused, the new one works', async () => {
    const p = await createProject(ctx, 'rotating');
    const first = expectOk(await p.api.post('/api/v1/view_key', {}));
    const viewer = await connect(first.view_key, first.view_secret);
    const second = expectOk(await p.api.post('/api/v1/view_key', {}));
    await vi.waitFor(() => expect(isClosed(viewer)).toBe(true), { timeout: 2_000 });
    expect(await connackOf(first.view_key, first.view_secret)).toBe(4);
    expect(await connackOf(second.view_key, second.view_secret)).toBe(0);
  });

  it('disabling a device ends its sessions (MQTT and TCP) and refuses it until it is enabled again', async () => {
    const p = await createProject(ctx, 'disable');
    const d = await deviceOf(p);
    const t = await deviceOf(p, { name: 'dtu' });
    const device = await connect(d.token, p.project.project_key);
    const dtu = await tcpLogin(p.project.project_key, t.token);
    await vi.waitFor(() => expect(ctx.services.sessions.isOnline(t.id)).toBe(true));
    const dtuClosed = once(dtu, 'close');
    expectOk(await p.api.put(`/api/v1/device/${d.id}/info`, { disabled: true }));
    expectOk(await p.api.put(`/api/v1/device/${t.id}/info`, { disabled: true }));
    await vi.waitFor(() => expect(isClosed(device)).toBe(true), { timeout: 2_000 });
    await dtuClosed;
    expect(await connackOf(d.token, p.project.project_key)).toBe(5);
    expect(expectOk(await p.api.get(`/api/v1/device/${d.id}`)).disabled).toBe(true);
    expectOk(await p.api.put(`/api/v1/device/${d.id}/info`, { disabled: false }));
    expect(await connackOf(d.token, p.project.project_key)).toBe(0);
  });
});
