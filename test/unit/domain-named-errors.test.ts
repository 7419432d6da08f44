import { describe, expect, it } from 'vitest';
import { Duplicate, MissingReference } from '../../src/db/errors.ts';
import type { CommandsRepository } from '../../src/db/repositories/commands.repository.ts';
import type { DeviceTypesRepository } from '../../src/db/repositories/device-types.repository.ts';
import { createCommandStore } from '../../src/domain/commands/send.ts';
import { createDeviceTypesService } from '../../src/domain/device-types/device-types.service.ts';
import { Conflict, StateConflict } from '../../src/errors.ts';

/**
 * The services map the repositories' named errors (src/db/errors.ts) as they mapped the SQLSTATEs
 * before: paths that only a race or a one-in-2^144 draw reaches, so they are driven here with fakes.
 */
const scope = { projectId: 'p1' };

function fakeTypes(overrides: Partial<DeviceTypesRepository>): DeviceTypesRepository {
  return overrides as DeviceTypesRepository;
}

describe('device types and named database errors', () => {
  it('answers "used by N devices" when the foreign key refuses the delete (a device created meanwhile)', async () => {
    const types = fakeTypes({
      inTransaction: () => Promise.reject(new MissingReference('device_type')),
      deviceCount: () => Promise.resolve(2),
    });
    const service = createDeviceTypesService({ types });
    const err = await service.delete(scope, 't1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateConflict);
    expect((err as Error).message).toBe('Device type is used by 2 devices');
  });

  it('draws a new type key when the drawn one is taken, three times at most', async () => {
    let calls = 0;
    const types = fakeTypes({
      insert: () => {
        calls++;
        return Promise.reject(new Duplicate('type_key'));
      },
    });
    const service = createDeviceTypesService({ types });
    await expect(service.create(scope, { name: 'x' })).rejects.toBeInstanceOf(Duplicate);
    expect(calls).toBe(3);
  });

  it('does not draw again for another duplicate', async () => {
    let calls = 0;
    const types = fakeTypes({
      insert: () => {
        calls++;
        return Promise.reject(new Duplicate('something_else'));
      },
    });
    await expect(createDeviceTypesService({ types }).create(scope, { name: 'x' })).rejects.toBeInstanceOf(Duplicate);
    expect(calls).toBe(1);
  });
});

describe('command store and named database errors', () => {
  const cmd = { method: 'm', params: {}, id: undefined, ttl: undefined, timeoutMs: 30_000 };

  it('picks another id when the drawn one was taken meanwhile, and gives up with 409 after five tries', async () => {
    let inserts = 0;
    const repo = {
      countQueued: () => Promise.resolve(0),
      seqState: () => Promise.resolve({ latest: 7, open: [] }),
      insert: () => {
        inserts++;
        return Promise.reject(new Duplicate('command_seq'));
      },
    } as unknown as CommandsRepository;
    const err = await createCommandStore({ repo })
      .insert('p1', 'd1', cmd, 1_000)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Conflict);
    expect((err as Error).message).toBe('Too many concurrent commands to this device; retry');
    expect(inserts).toBe(5);
  });
});
