import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createCommandsRepository } from '../../src/db/repositories/commands.repository.ts';
import { newId } from '../../src/lib/ids.ts';
import { createServices, type Services } from '../../src/composition/services.ts';
import { createProject, createTestApp, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';
import { openPrivateTestDatabase } from '../helpers/db.ts';

/**
 * The command sweeper (device-protocol.md §10) on an injected clock: a queued command with a time
 * to live waits for its device however long the server runs or restarts; one without (it exists
 * only while its send runs) is failed as interrupted a minute after it was created, not sooner.
 * Its own database: the sweeper's clock runs ahead and its updates are not scoped to a project.
 */
const MINUTE = 60_000;
let ctx: TestContext;
let p: ProjectFixture;
const started: Services[] = [];

beforeAll(async () => {
  ctx = await createTestApp({}, { database: await openPrivateTestDatabase() });
  p = await createProject(ctx);
});
afterAll(async () => {
  for (const s of started) {
    await s.commands.stop();
    await s.ingest.stop();
  }
  await ctx?.close();
});

/** A device that is offline, a command queued for it for an hour, and two cut short by a crash (queued without a time to live). */
async function queuedCommands(services: Services, t0: number) {
  const d = expectOk(await p.api.post('/api/v1/device', { name: 'sleeper' })).id as string;
  const withTtl = await services.commands.send({ projectId: p.project.id }, d, { method: 'later', ttl: 3600 });
  expect(withTtl.state).toBe('queued');
  const repo = createCommandsRepository(ctx.database.db);
  const interrupted = (seq: number, createTime: number) =>
    repo.insert({
      id: newId(createTime),
      projectId: p.project.id,
      deviceId: d,
      seq,
      method: 'cut short',
      params: {},
      state: 'queued',
      expireTime: null,
      replyTimeoutMs: 30_000,
      createTime,
      updateTime: createTime,
    });
  const old = await interrupted(900, t0);
  const young = await interrupted(901, t0 + 30_000);
  const states = async () => {
    const rows = await Promise.all([withTtl.id, old.id, young.id].map((id) => repo.get(p.project.id, id)));
    return { withTtl: rows[0]?.state, old: rows[1]?.state, young: rows[2]?.state, oldError: rows[1]?.error };
  };
  return { d, withTtl, states };
}

describe('the command sweeper', () => {
  it('fails a queued command without a time to live a minute after it was created, and keeps one with a time to live queued', async () => {
    const clock = { now: Date.now() };
    const services = createServices({ db: ctx.database.db, clock: () => clock.now });
    const t0 = clock.now;
    const { states } = await queuedCommands(services, t0);
    await services.commands.sweep(t0 + MINUTE - 1);
    expect(await states()).toMatchObject({ withTtl: 'queued', old: 'queued', young: 'queued' });
    await services.commands.sweep(t0 + MINUTE);
    expect(await states()).toEqual({
      withTtl: 'queued',
      old: 'failed',
      young: 'queued',
      oldError: 'interrupted before it was sent',
    });
    // Long after: the time to live (an hour) still holds the first; the second interrupted one goes too.
    await services.commands.sweep(t0 + 30 * MINUTE);
    expect(await states()).toMatchObject({ withTtl: 'queued', young: 'failed' });
    await services.commands.sweep(t0 + 61 * MINUTE);
    expect(await states()).toMatchObject({ withTtl: 'expired' });
  });

  it('after a restart, the started sweeper fails only what was interrupted; the queued command reaches its device', async () => {
    const clock = { now: Date.now() };
    const t0 = clock.now;
    const before = createServices({ db: ctx.database.db, clock: () => clock.now });
    const { d, withTtl, states } = await queuedCommands(before, t0);
    // The server restarts two minutes later (a new set of services over the same database).
    clock.now = t0 + 2 * MINUTE;
    const restarted = createServices({ db: ctx.database.db, clock: () => clock.now });
    started.push(restarted);
    restarted.commands.start();
    await vi.waitFor(async () => expect((await states()).old).toBe('failed'), { timeout: 10_000, interval: 50 });
    expect(await states()).toMatchObject({ withTtl: 'queued', young: 'failed' });
    const sent: string[] = [];
    const session = {
      deviceId: d,
      projectId: p.project.id,
      transport: 'mqtt' as const,
      send: async (topic: string) => void sent.push(topic),
      close: () => {},
    };
    restarted.sessions.attach(session);
    expect(await restarted.commands.deliverQueued({ deviceId: d, projectId: p.project.id })).toBe(1);
    expect(sent).toEqual([`command/send/${withTtl.command_id}`]);
    restarted.sessions.detach(session);
  });
});
