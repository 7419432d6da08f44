import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeviceSession } from '../../src/domain/delivery/sessions.ts';
import { COMMAND_LIMITS } from '../../src/domain/commands/command-input.ts';
import {
  createProject,
  createTestApp,
  expectFailure,
  expectOk,
  type ProjectFixture,
  type TestContext,
} from '../helpers/app.ts';
import { addDevice } from '../helpers/factories.ts';

/**
 * A device's command queue is bounded (README "Security and limits"): at most
 * COMMAND_LIMITS.queuedPerDevice commands wait for one device, and a long queue is delivered page by
 * page on connect instead of being loaded and claimed whole.
 */
let ctx: TestContext;
let p: ProjectFixture;
beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx, 'queues');
});
afterAll(() => ctx?.close());

const newDevice = async () => (await addDevice(p.api, { name: 'queued' })).id;

const states = async (deviceId: string) => {
  const log = expectOk(await p.api.get(`/api/v1/device/${deviceId}/commands?page_records=100`));
  return (log.items as Array<{ state: string }>).map((c) => c.state);
};

describe('queued commands', () => {
  it('refuses a command beyond the per-device queue (409), for that device only', async () => {
    const deviceId = await newDevice();
    for (let i = 0; i < COMMAND_LIMITS.queuedPerDevice; i++) {
      expectOk(
        await p.api.post(`/api/v1/control/device/${deviceId}/command`, { method: 'm', params: { i }, ttl: 3600 }),
      );
    }
    expectFailure(
      await p.api.post(`/api/v1/control/device/${deviceId}/command`, { method: 'm', params: {}, ttl: 3600 }),
      409,
    );
    // Another device of the same project is not affected.
    expectOk(
      await p.api.post(`/api/v1/control/device/${await newDevice()}/command`, { method: 'm', params: {}, ttl: 3600 }),
    );
  });

  it('delivers a long queue page by page, in order, never claiming it whole', async () => {
    const deviceId = await newDevice();
    const n = COMMAND_LIMITS.queuedPerDevice;
    for (let i = 0; i < n; i++) {
      expectOk(
        await p.api.post(`/api/v1/control/device/${deviceId}/command`, {
          method: 'm',
          params: { i, pad: 'x'.repeat(1000) },
          ttl: 3600,
        }),
      );
    }
    const received: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let firstSeen!: () => void;
    const first = new Promise<void>((r) => (firstSeen = r));
    const session: DeviceSession = {
      deviceId,
      projectId: p.project.id,
      transport: 'mqtt',
      send: async (_topic, payload) => {
        received.push((JSON.parse(payload.toString()) as { params: { i: number } }).params.i);
        if (received.length === 1) {
          firstSeen();
          await gate;
        }
      },
      close: () => {},
    };
    ctx.services.sessions.attach(session);
    const delivered = ctx.services.commands.deliverQueued({ deviceId, projectId: p.project.id });
    await first;
    // While the first command is being sent, only its page has been claimed.
    const sentSoFar = (await states(deviceId)).filter((s) => s === 'sent').length;
    expect(sentSoFar).toBeLessThan(n / 2);
    release();
    expect(await delivered).toBe(n);
    expect(received).toEqual(Array.from({ length: n }, (_, i) => i));
    expect((await states(deviceId)).filter((s) => s === 'queued')).toEqual([]);
    ctx.services.sessions.detach(session);
  });
});
