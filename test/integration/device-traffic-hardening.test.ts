import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeviceSession } from '../../src/domain/delivery/sessions.ts';
import {
  createProject,
  createTestApp,
  expectFailure,
  expectOk,
  type ProjectFixture,
  type TestContext,
} from '../helpers/app.ts';
import { addDeviceWithToken } from '../helpers/factories.ts';

let ctx: TestContext;
let p: ProjectFixture;
beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx);
});
afterAll(() => ctx?.close());

async function device(name = 'dev') {
  const d = await addDeviceWithToken(p, { name });
  return { ...d, identity: { deviceId: d.id, projectId: p.project.id } };
}

function fakeSession(deviceId: string, send: DeviceSession['send']): DeviceSession & { sent: string[] } {
  const sent: string[] = [];
  return {
    deviceId,
    projectId: p.project.id,
    transport: 'mqtt',
    sent,
    send: async (topic, payload) => {
      await send(topic, payload);
      sent.push(`${topic} ${payload.toString()}`);
    },
    close: () => {},
  };
}

const deep = (levels: number) => {
  let v: unknown = 1;
  for (let i = 0; i < levels; i++) v = [v];
  return v;
};

describe('device traffic under pressure', () => {
  it('gives concurrent commands to one device distinct ids instead of false conflicts', async () => {
    const d = await device();
    const session = fakeSession(d.id, async () => {});
    ctx.services.sessions.attach(session);
    const answers = await Promise.all(
      Array.from({ length: 12 }, () => p.api.post(`/api/v1/control/device/${d.id}/command`, { method: 'ping' })),
    );
    const seqs = answers.map((a) => expectOk(a).command_id as number);
    expect(new Set(seqs).size).toBe(12);
    expect(session.sent).toHaveLength(12);
  });

  it('hands a command whose publish failed during a takeover to the newer session', async () => {
    const d = await device();
    const newer = fakeSession(d.id, async () => {});
    const older = fakeSession(d.id, async () => {
      // The device reconnects while the command is being published on the old connection.
      ctx.services.sessions.attach(newer);
      throw new Error('connection replaced');
    });
    ctx.services.sessions.attach(older);
    const view = expectOk(await p.api.post(`/api/v1/control/device/${d.id}/command`, { method: 'reboot', ttl: 60 }));
    await expect.poll(() => newer.sent.length).toBe(1);
    expect(newer.sent[0]).toBe(
      `command/send/${view.command_id} {"method":"reboot","params":{},"id":${view.command_id}}`,
    );
    const log = expectOk(await p.api.get(`/api/v1/device/${d.id}/commands`));
    expect(log.items[0].state).toBe('sent');
  });

  it('answers 422, not 500, when the connection fails while pushing', async () => {
    const d = await device();
    ctx.services.sessions.attach(fakeSession(d.id, async () => Promise.reject(new Error('socket closed'))));
    expect(
      expectFailure(await p.api.post(`/api/v1/control/device/${d.id}/attributes`, { relay: true }), 422).message,
    ).toMatch(/socket closed/);
    expectFailure(await p.api.post(`/api/v1/control/device/${d.id}/data/stream/set`, { type: 'text', msg: 'x' }), 422);
  });

  it('refuses deeply nested JSON with a 400 on every path instead of overflowing the stack', async () => {
    const d = await device();
    // Written as text: JSON.stringify itself overflows the stack on such values.
    const nested = '['.repeat(5000) + '1' + ']'.repeat(5000);
    for (const [url, payload] of [
      [`/device/v1/${d.token}/attributes`, `{"a":${nested}}`],
      [`/device/v1/${d.token}/event/report`, `{"method":"m","params":{"a":${nested}}}`],
      [`/api/v1/control/device/${d.id}/command`, `{"method":"m","params":{"a":${nested}}}`],
    ] as const) {
      const res = await ctx.app.inject({
        method: 'POST',
        url,
        payload,
        headers: {
          'content-type': 'application/json',
          'project-key': p.project.project_key,
          authorization: `Bearer ${p.appToken}`,
        },
      });
      expect(res.statusCode, url).toBe(200);
      expect(res.json().errcode, url).toBe(400);
    }
    // The same limits hold for what the broker will pass in directly.
    await expect(
      ctx.services.currentValues.report(
        await ctx.services.deviceAuth.authenticate(p.project.project_key, d.token).then((i) => i!),
        { a: deep(5000) },
      ),
    ).rejects.toMatchObject({ errcode: 400 });
    await expect(
      ctx.services.commands.reply(d.identity, 1, { method: 'm', params: { a: deep(5000) } }),
    ).rejects.toMatchObject({ errcode: 400 });
  });

  it('refuses command replies that PostgreSQL could not store', async () => {
    const d = await device();
    ctx.services.sessions.attach(fakeSession(d.id, async () => {}));
    const view = expectOk(await p.api.post(`/api/v1/control/device/${d.id}/command`, { method: 'ping' }));
    await expect(
      ctx.services.commands.reply(d.identity, view.command_id, { method: 'ping', params: { s: 'a\u0000b' } }),
    ).rejects.toMatchObject({ errcode: 400 });
    await expect(
      ctx.services.commands.reply(d.identity, view.command_id, { method: 'ping', params: { s: '\ud800' } }),
    ).rejects.toMatchObject({ errcode: 400 });
    expect(
      await ctx.services.commands.reply(d.identity, view.command_id, { method: 'ping', params: { ok: true } }),
    ).toBe(true);
  });

  it('flushes the presence of more devices than one statement can carry', async () => {
    const d = await device();
    const rows = Array.from({ length: 25_000 }, (_, i) => ({
      deviceId: i === 0 ? d.id : `missing-${i}`,
      online: true,
      activeTs: { connect: 1_700_000_000_000 },
    }));
    const { createPresenceRepository } = await import('../../src/db/repositories/presence.repository.ts');
    await createPresenceRepository(ctx.database.db).apply(rows);
    expect(expectOk(await p.api.get(`/api/v1/device/${d.id}`)).online).toBe(true);
  });

  it('refuses __proto__ as an attribute identifier', async () => {
    const d = await device();
    const res = await ctx.app.inject({
      method: 'POST',
      url: `/device/v1/${d.token}/attributes`,
      payload: '{"a":1}',
      headers: { 'content-type': 'application/json', 'project-key': p.project.project_key },
    });
    expect(res.json().result).toBe(1);
    const identity = (await ctx.services.deviceAuth.authenticate(p.project.project_key, d.token))!;
    await expect(ctx.services.currentValues.report(identity, JSON.parse('{"__proto__":1}'))).rejects.toMatchObject({
      errcode: 400,
    });
  });
});
