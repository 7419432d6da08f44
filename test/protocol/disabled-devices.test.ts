import net from 'node:net';
import { eq } from 'drizzle-orm';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { TcpListener } from '../../mqtt-broker/tcp/listener.ts';
import { GATEWAY_TOPICS } from '../../mqtt-broker/protocol/topics.ts';
import { devices } from '../../src/db/schema/index.ts';
import { createProject, deviceWithToken, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';
import { startAppWithBroker, type TestBroker } from '../helpers/broker.ts';
import { nextOn } from '../helpers/mqtt.ts';

/** A disabled device has no session on any transport (device-protocol.md §6, §8): not over TCP, not behind a gateway. */
let ctx: TestContext;
let p: ProjectFixture;
let tb: TestBroker;
let tcp: TcpListener;
let tcpPort: number;
let stop: (() => Promise<void>) | undefined;
const clients: MqttClient[] = [];
const sockets: net.Socket[] = [];

beforeAll(async () => {
  ({ ctx, tb, tcp, tcpPort, close: stop } = await startAppWithBroker({ tcp: { loginTimeoutMs: 10_000 } }));
  p = await createProject(ctx);
});
afterAll(async () => {
  for (const c of clients) c.end(true);
  for (const s of sockets) s.destroy();
  await stop?.();
});

async function device(name: string, type?: string) {
  return deviceWithToken(p, { name, ...(type ? { type } : {}) });
}
const disable = (id: string) => ctx.database.db.update(devices).set({ disabled: true }).where(eq(devices.id, id));

describe('a disabled sub-device', () => {
  it('is refused on gateway/connect (403) and never comes online; an enabled one next to it does', async () => {
    const gatewayType = expectOk(await p.api.post('/api/v1/device_type', { name: 'gateway', conn_type: '3' }))
      .id as string;
    const subType = expectOk(await p.api.post('/api/v1/device_type', { name: 'sensor', conn_type: '2' })).id as string;
    const gateway = await device('gateway', gatewayType);
    const off = await device('disabled sensor', subType);
    const on = await device('enabled sensor', subType);
    expectOk(await p.api.post(`/api/v1/device/${gateway.id}/sub_devices`, { device: off.id, address: '1' }));
    expectOk(await p.api.post(`/api/v1/device/${gateway.id}/sub_devices`, { device: on.id, address: '2' }));
    await disable(off.id);

    const g = await mqtt.connectAsync(tb.url, {
      username: gateway.token,
      password: p.project.project_key,
      reconnectPeriod: 0,
    });
    clients.push(g);
    await g.subscribeAsync(GATEWAY_TOPICS.connectResponse);
    const connectSub = async (address: string) => {
      const answer = nextOn(g, GATEWAY_TOPICS.connectResponse);
      await g.publishAsync(GATEWAY_TOPICS.connect, JSON.stringify({ device: address }), { qos: 1 });
      return JSON.parse(await answer) as unknown;
    };
    expect(await connectSub('1')).toMatchObject({ result: 0, errcode: 403, device: '1' });
    expect(await connectSub('2')).toEqual({ result: 1, device: '2' });
    expect(ctx.services.sessions.isOnline(on.id)).toBe(true);
    expect(ctx.services.sessions.isOnline(off.id)).toBe(false);
    await ctx.services.presence.flush();
    expect(expectOk(await p.api.get(`/api/v1/device/${off.id}`)).online).toBe(false);
  });
});

describe('a disabled TCP device', () => {
  it('is closed at login without a byte and gets no session; an enabled one logs in', async () => {
    const off = await device('disabled dtu');
    const on = await device('enabled dtu');
    await disable(off.id);
    const login = (d: { token: string }) => {
      const socket = net.connect(tcpPort, '127.0.0.1');
      sockets.push(socket);
      socket.on('error', () => {});
      const received: Buffer[] = [];
      socket.on('data', (b) => received.push(b));
      const link = { received, closed: false };
      socket.once('close', () => (link.closed = true));
      socket.write(`${p.project.project_key}&${d.token}\r\n`);
      return link;
    };
    const failures = tcp.stats().loginFailures;
    const refused = login(off);
    // Whichever comes first: the link closed, or a session of the disabled device.
    await vi.waitFor(() => expect(refused.closed || ctx.services.sessions.isOnline(off.id)).toBe(true));
    expect(refused).toEqual({ received: [], closed: true });
    expect(tcp.stats().loginFailures).toBe(failures + 1);
    expect(ctx.services.sessions.isOnline(off.id)).toBe(false);
    login(on);
    await vi.waitFor(() => expect(ctx.services.sessions.get(on.id)?.transport).toBe('tcp'));
    expect(ctx.services.sessions.isOnline(off.id)).toBe(false);
  });
});
