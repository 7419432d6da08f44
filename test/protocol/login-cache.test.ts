import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startAppWithBroker, type TestBroker } from '../helpers/broker.ts';
import { createProject, deviceWithToken, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';

/**
 * Device logins are answered from a cache and looked up in batches (src/domain/devices/device-auth.service.ts),
 * yet a revocation refuses the very next login (README "Security and limits"): every case below first logs
 * the device in, so its credentials are cached, then revokes them and logs in again at once.
 */
let ctx: TestContext;
let tb: TestBroker;
let stop: (() => Promise<void>) | undefined;
const clients: MqttClient[] = [];

beforeAll(async () => {
  ({ ctx, tb, close: stop } = await startAppWithBroker());
});
afterAll(async () => {
  for (const c of clients) c.end(true);
  await stop?.();
});

/** The CONNACK return code of a login (0 = accepted), the connection closed again. */
async function connackOf(token: string, projectKey: string): Promise<number> {
  try {
    const c = await mqtt.connectAsync(tb.url, { username: token, password: projectKey, reconnectPeriod: 0 });
    clients.push(c);
    c.end(true);
    return 0;
  } catch (err) {
    return (err as { code?: number }).code ?? -1;
  }
}

/** A device whose login is cached: it has logged in once. */
async function cachedDevice(p: ProjectFixture) {
  const d = await deviceWithToken(p);
  expect(await connackOf(d.token, p.project.project_key)).toBe(0);
  return d;
}

describe('cached device logins after a revocation', () => {
  it('a reset access token: the old one is refused at once, the new one accepted', async () => {
    const p = await createProject(ctx, 'token reset');
    const d = await cachedDevice(p);
    const cert = expectOk(await p.api.post(`/api/v1/device/${d.id}/certificate/reset`, {}));
    expect(await connackOf(d.token, p.project.project_key)).toBe(4);
    expect(await connackOf(cert.access_token as string, p.project.project_key)).toBe(0);
  });

  it('a deleted device is refused at once', async () => {
    const p = await createProject(ctx, 'device delete');
    const d = await cachedDevice(p);
    expectOk(await p.api.delete(`/api/v1/device/${d.id}`));
    expect(await connackOf(d.token, p.project.project_key)).toBe(4);
  });

  it('a disabled device is refused at once, and accepted at once when enabled again', async () => {
    const p = await createProject(ctx, 'device disable');
    const d = await cachedDevice(p);
    expectOk(await p.api.put(`/api/v1/device/${d.id}/info`, { disabled: true }));
    expect(await connackOf(d.token, p.project.project_key)).toBe(5);
    expectOk(await p.api.put(`/api/v1/device/${d.id}/info`, { disabled: false }));
    expect(await connackOf(d.token, p.project.project_key)).toBe(0);
  });

  it("a deleted project's devices are refused at once", async () => {
    const p = await createProject(ctx, 'project delete');
    const d = await cachedDevice(p);
    await ctx.services.projects.delete(p.project.id);
    expect(await connackOf(d.token, p.project.project_key)).toBe(4);
  });

  it('a storm of logins in one turn is answered device by device: good ones accepted, a wrong key refused', async () => {
    const p = await createProject(ctx, 'storm');
    const other = await createProject(ctx, 'storm bystander');
    const devices = await Promise.all(Array.from({ length: 20 }, () => deviceWithToken(p)));
    const stranger = await deviceWithToken(other);
    const codes = await Promise.all([
      ...devices.map((d) => connackOf(d.token, p.project.project_key)),
      // A real token with another project's key.
      connackOf(stranger.token, p.project.project_key),
      connackOf('no-such-token', p.project.project_key),
    ]);
    expect(codes).toEqual([...devices.map(() => 0), 4, 4]);
    await vi.waitFor(() => expect(devices.every((d) => !ctx.services.sessions.isOnline(d.id))).toBe(true));
  });
});
