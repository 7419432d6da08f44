import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProject, createTestApp, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';

let ctx: TestContext;
let p: ProjectFixture;
beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx);
});
afterAll(() => ctx?.close());

describe('presence flushed to the device columns', () => {
  it('shows online, active and the latest time of each kind in the device object and the stats', async () => {
    const d = expectOk(await p.api.post('/api/v1/device', { name: 'live' }));
    const cert = expectOk(await p.api.get(`/api/v1/device/${d.id}/certificate`));
    const identity = await ctx.services.deviceAuth.authenticate(p.project.project_key, cert.access_token);
    expect(identity).toMatchObject({ deviceId: d.id, projectId: p.project.id, connType: '1', disabled: false });
    ctx.services.presence.connected(identity!, 'mqtt');
    ctx.services.presence.touch(d.id, 'attributes', 1_700_000_000_123);
    await ctx.services.presence.flush();
    const read = expectOk(await p.api.get(`/api/v1/device/${d.id}`));
    expect(read.online).toBe(true);
    expect(read.active).toEqual({ connect: expect.any(Number), attributes: 1_700_000_000_123 });
    ctx.services.presence.disconnected(identity!, 'mqtt', 'test');
    await ctx.services.presence.flush();
    const after = expectOk(await p.api.get(`/api/v1/device/${d.id}`));
    expect(after.online).toBe(false);
    expect(Object.keys(after.active).sort()).toEqual(['attributes', 'connect', 'disconnect']);
  });

  it('authenticates only the exact token and project key, and forgets a reset token at once', async () => {
    const d = expectOk(await p.api.post('/api/v1/device', { name: 'auth' }));
    const cert = expectOk(await p.api.get(`/api/v1/device/${d.id}/certificate`));
    const other = await createProject(ctx, 'other');
    expect(await ctx.services.deviceAuth.authenticate(other.project.project_key, cert.access_token)).toBeUndefined();
    expect(await ctx.services.deviceAuth.authenticate(p.project.project_key, cert.access_token + 'x')).toBeUndefined();
    expect(await ctx.services.deviceAuth.authenticate(p.project.project_key, cert.access_token)).toBeDefined();
    let closed = '';
    ctx.services.sessions.attach({
      deviceId: d.id,
      projectId: p.project.id,
      transport: 'mqtt',
      send: async () => {},
      close: (r) => (closed = r),
    });
    const reset = expectOk(await p.api.post(`/api/v1/device/${d.id}/certificate/reset`));
    expect(closed).toBe('credentials revoked');
    expect(ctx.services.sessions.isOnline(d.id)).toBe(false);
    await new Promise((r) => setImmediate(r));
    expect(await ctx.services.deviceAuth.authenticate(p.project.project_key, cert.access_token)).toBeUndefined();
    expect(await ctx.services.deviceAuth.authenticate(p.project.project_key, reset.access_token)).toMatchObject({
      deviceId: d.id,
    });
  });
});
