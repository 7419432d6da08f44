import { describe, expect, it } from 'vitest';
import type { CredentialsRepository } from '../../src/db/repositories/credentials.repository.ts';
import type { DeviceAuthRepository } from '../../src/db/repositories/device-auth.repository.ts';
import type { HistoryRepository } from '../../src/db/repositories/history.repository.ts';
import type { ProjectSettingsRepository } from '../../src/db/repositories/project-settings.repository.ts';
import { createAuthService } from '../../src/domain/auth/auth.service.ts';
import { createDeviceAuthService } from '../../src/domain/devices/device-auth.service.ts';
import { createEventBus } from '../../src/domain/events/event-bus.ts';
import { createProjectSettingsService } from '../../src/domain/projects/project-settings.service.ts';
import { createHistoryService } from '../../src/domain/telemetry/history.service.ts';

/**
 * Caches that forget on events, whichever node emitted them (docs/cluster.md §4): each case emits the event
 * as a copy from another node (`remote`) and checks that the next read asks the store again; durable work
 * is done only for the origin's own events.
 */
const remote = { remote: true } as const;

describe('caches forget on events from other nodes', () => {
  it('device logins: a renamed device, a changed device type of its project', async () => {
    let queries = 0;
    let name = 'old';
    const repo: DeviceAuthRepository = {
      byTokens: async () => {
        queries++;
        return [
          {
            deviceId: 'd1',
            projectId: 'p1',
            name,
            typeId: 't1',
            connType: '1',
            disabled: false,
            accessToken: 'tok',
            projectKey: 'pk',
          },
        ];
      },
    };
    const bus = createEventBus();
    const auth = createDeviceAuthService({ repo, bus });
    await auth.authenticate('pk', 'tok');
    await auth.authenticate('pk', 'tok');
    expect(queries).toBe(1);
    name = 'new';
    bus.emit('device.updated', { projectId: 'p1', deviceId: 'd1' }, remote);
    expect((await auth.authenticate('pk', 'tok'))?.name).toBe('new');
    expect(queries).toBe(2);
    bus.emit('device_type.changed', { projectId: 'p1', typeId: 't1' }, remote);
    await auth.authenticate('pk', 'tok');
    expect(queries).toBe(3);
    // Not a revocation: a login checked meanwhile still attaches.
    const mark = auth.mark();
    bus.emit('device.updated', { projectId: 'p1', deviceId: 'd1' }, remote);
    expect(auth.revokedSince({ deviceId: 'd1', projectId: 'p1' }, mark)).toBe(false);
  });

  it('principal tokens: a revocation or a project deletion elsewhere', async () => {
    let reads = 0;
    let since = 1_000;
    const credentials = {
      credentialsTime: async () => {
        reads++;
        return since;
      },
    } as unknown as CredentialsRepository;
    const bus = createEventBus();
    const auth = createAuthService({ credentials, bus });
    const app = { projectId: 'p1', kind: 'app', subjectId: 'a1' } as const;
    expect(await auth.tokenValid(app, 2_000)).toBe(true);
    since = 3_000; // the secret was reset on another node
    expect(await auth.tokenValid(app, 2_000)).toBe(true);
    bus.emit('principal.revoked', { kind: 'app', subjectId: 'a1' }, remote);
    expect(await auth.tokenValid(app, 2_000)).toBe(false);
    expect(reads).toBe(2);
    await auth.tokenValid(app, 4_000);
    bus.emit('project.deleted', { projectId: 'p1' }, remote);
    await auth.tokenValid(app, 4_000);
    expect(reads).toBe(3);
  });

  it('project settings: a change elsewhere', async () => {
    let limit: number | null = null;
    let reads = 0;
    const repo = {
      get: async () => {
        reads++;
        return { deviceRateLimit: limit, historyRetentionDays: null, customerPasswordMinLength: null };
      },
    } as unknown as ProjectSettingsRepository;
    const bus = createEventBus();
    const settings = createProjectSettingsService({
      repo,
      bus,
      defaults: { deviceRateLimit: 10, historyRetentionDays: 30 },
    });
    const scope = { projectId: 'p1' } as Parameters<typeof settings.get>[0];
    expect((await settings.get(scope)).device_rate_limit).toBeNull();
    limit = 7;
    expect((await settings.get(scope)).device_rate_limit).toBeNull();
    bus.emit('project.settings_changed', { projectId: 'p1' }, remote);
    expect((await settings.get(scope)).device_rate_limit).toBe(7);
    expect(reads).toBe(2);
  });

  it('attribute models: a device type changed elsewhere; a deleted device: values forgotten everywhere, history removed once', async () => {
    let loads = 0;
    const removed: string[] = [];
    const forgotten: string[] = [];
    const bus = createEventBus();
    const history = createHistoryService({
      history: {
        removeDevices: async (ids: readonly string[]) => void removed.push(...ids),
      } as unknown as HistoryRepository,
      values: { list: async () => [], remove: async () => {} },
      devices: { get: async () => undefined },
      attributeModels: async () => {
        loads++;
        return [];
      },
      bus,
      forgetDevice: (id) => forgotten.push(id),
    });
    await history.modelLookup('p1', 't1');
    await history.modelLookup('p1', 't1');
    expect(loads).toBe(1);
    bus.emit('device_type.changed', { projectId: 'p1', typeId: 't1' }, remote);
    await history.modelLookup('p1', 't1');
    expect(loads).toBe(2);

    bus.emit('device.deleted', { projectId: 'p1', deviceId: 'far' }, remote);
    bus.emit('device.deleted', { projectId: 'p1', deviceId: 'here' });
    await new Promise((r) => setTimeout(r, 0));
    expect(forgotten).toEqual(['far', 'here']);
    expect(removed).toEqual(['here']);
  });
});
