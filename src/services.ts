import { pino, type Logger } from 'pino';
import type { Db } from './db/client.ts';
import { createDeviceAuthRepository } from './db/repositories/device-auth.repository.ts';
import { createPresenceRepository } from './db/repositories/presence.repository.ts';
import { createSessionRegistry } from './domain/delivery/sessions.ts';
import { createDeviceAuthService } from './domain/devices/device-auth.service.ts';
import { createPresenceService } from './domain/devices/presence.service.ts';
import { createEventBus } from './domain/events/event-bus.ts';
import { createCredentialsRepository } from './db/repositories/credentials.repository.ts';
import { createDeviceInfosRepository } from './db/repositories/device-infos.repository.ts';
import { createDevicesRepository } from './db/repositories/devices.repository.ts';
import { createProjectsRepository } from './db/repositories/projects.repository.ts';
import { createAdminsService } from './domain/admins/admins.service.ts';
import { createAppsService } from './domain/apps/apps.service.ts';
import { createAuthService } from './domain/auth/auth.service.ts';
import { createCustomersService } from './domain/customers/customers.service.ts';
import { createDeviceTypesService } from './domain/device-types/device-types.service.ts';
import { createDevicesService } from './domain/devices/devices.service.ts';
import { createExtendInfosService } from './domain/devices/extend-infos.service.ts';
import { createGroupsService } from './domain/groups/groups.service.ts';
import { createProjectsService } from './domain/projects/projects.service.ts';
import { createViewKeyService } from './domain/projects/view-key.service.ts';

export interface ServiceDeps {
  db: Db;
  clock?: () => number;
  logger?: Pick<Logger, 'error' | 'warn' | 'info'>;
}

/** Builds every domain service once; HTTP routes, the broker and the CLI share them. */
export function createServices({ db, clock = Date.now, logger = pino({ level: 'silent' }) }: ServiceDeps) {
  const bus = createEventBus();
  const sessions = createSessionRegistry();
  // A reset token or a deleted device ends its live connection at once (device-protocol.md §1).
  bus.on('device.credentials_revoked', ({ deviceId }) => sessions.kick(deviceId, 'credentials revoked'));
  const auth = createAuthService({ credentials: createCredentialsRepository(db), clock });
  const projectsRepo = createProjectsRepository(db);
  const devicesRepo = createDevicesRepository(db);
  return {
    bus,
    sessions,
    presence: createPresenceService({ repo: createPresenceRepository(db), bus, logger, clock }),
    deviceAuth: createDeviceAuthService({ repo: createDeviceAuthRepository(db), bus, clock }),
    auth,
    projects: createProjectsService({ projects: projectsRepo, auth, clock }),
    devices: createDevicesService({ devices: devicesRepo, projects: projectsRepo, bus, clock }),
    extendInfos: createExtendInfosService({ devices: devicesRepo, infos: createDeviceInfosRepository(db), clock }),
    deviceTypes: createDeviceTypesService({ db, clock }),
    groups: createGroupsService({ db, clock }),
    customers: createCustomersService({ db, clock, auth }),
    apps: createAppsService({ db, clock, auth }),
    admins: createAdminsService({ db, clock, auth }),
    viewKey: createViewKeyService({ db, clock }),
  };
}
export type Services = ReturnType<typeof createServices>;
