import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRepositories } from '../../src/composition/repositories.ts';
import { createCommandDelivery } from '../../src/domain/commands/delivery.ts';
import type { DeviceSession } from '../../src/domain/delivery/sessions.ts';
import { createProject, expectOk, type ProjectFixture, type TestContext, createTestApp } from '../helpers/app.ts';
import { addDeviceWithToken } from '../helpers/factories.ts';

/**
 * A command whose publish failed because its session was replaced by a newer login on another node
 * (docs/cluster.md) goes to that session, as a same-node replacement does (device-traffic-hardening.test.ts):
 * the other node's delivery on connect may have run before the command was re-queued.
 */
let ctx: TestContext;
let p: ProjectFixture;
beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx);
});
afterAll(() => ctx?.close());

const silent = { warn() {} };

function session(deviceId: string, projectId: string, send: DeviceSession['send']): DeviceSession {
  return { deviceId, projectId, transport: 'mqtt', send, close() {} };
}

/** A device with one command queued (ttl), and a delivery over a registry this test controls. */
async function setUp() {
  const d = await addDeviceWithToken(p, { name: 'mover' });
  const queued = expectOk(await p.api.post(`/api/v1/control/device/${d.id}/command`, { method: 'go', ttl: 60 }));
  expect(queued.state).toBe('queued');
  const here = new Map<string, DeviceSession>();
  let elsewhere: DeviceSession | undefined;
  const delivery = createCommandDelivery({
    repo: createRepositories(ctx.database.db).commands,
    sessions: {
      get: (id) => here.get(id),
      // Another node's session is a new proxy each time it is located (src/cluster/sessions.ts).
      locate: async (id) => here.get(id) ?? (elsewhere && { ...elsewhere }),
    },
    clock: Date.now,
    logger: silent,
  });
  const setElsewhere = (s: DeviceSession) => (elsewhere = s);
  const state = async () => expectOk(await p.api.get(`/api/v1/device/${d.id}/commands`)).items[0].state as string;
  return { d, queued, here, setElsewhere, delivery, state, identity: { deviceId: d.id, projectId: p.project.id } };
}

describe('a publish failed by a takeover on another node', () => {
  it('hands the re-queued command to the session on the other node', async () => {
    const s = await setUp();
    const sentThere: string[] = [];
    const remote = session(s.d.id, p.project.id, async (topic) => {
      sentThere.push(topic);
    });
    const older = session(s.d.id, p.project.id, async () => {
      // The newer login on another node closes this one while the command is on its way.
      s.here.delete(s.d.id);
      s.setElsewhere(remote);
      throw new Error('replaced by a newer connection of the same device on node b');
    });
    s.here.set(s.d.id, older);
    expect(await s.delivery.deliverQueued(s.identity)).toBe(0);
    await expect.poll(() => sentThere).toEqual([`command/send/${s.queued.command_id}`]);
    await expect.poll(s.state).toBe('sent');
  });

  it('does not retry a failed send through another node (no loop): the command stays queued', async () => {
    const s = await setUp();
    let tries = 0;
    const remote = session(s.d.id, p.project.id, async () => {
      tries += 1;
      throw new Error('the device disconnected');
    });
    s.setElsewhere(remote);
    const repo = createRepositories(ctx.database.db).commands;
    const row = await repo.get(p.project.id, s.queued.id as string);
    const view = await s.delivery.deliverNow(p.project.id, row!, remote, true);
    expect(view.state).toBe('queued');
    await new Promise((r) => setTimeout(r, 300));
    expect(tries).toBe(1);
    expect(await s.state()).toBe('queued');
  });
});
