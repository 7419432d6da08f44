import { pino, type Logger } from 'pino';
import type { Db } from './db/client.ts';
import { createDeviceAuthRepository } from './db/repositories/device-auth.repository.ts';
import { createPresenceRepository } from './db/repositories/presence.repository.ts';
import { createSessionRegistry } from './domain/delivery/sessions.ts';
import { createDeviceAuthService } from './domain/devices/device-auth.service.ts';
import { createPresenceService } from './domain/devices/presence.service.ts';
import { createCommandsService } from './domain/commands/commands.service.ts';
import { createEventBus } from './domain/events/event-bus.ts';
import { createAttributeValuesRepository } from './db/repositories/attribute-values.repository.ts';
import { createCertificateRepository } from './db/repositories/certificate.repository.ts';
import { createDataPushRepository } from './db/repositories/data-push.repository.ts';
import { createDeviceEventsRepository } from './db/repositories/device-events.repository.ts';
import { createCertificateService } from './domain/devices/certificate.service.ts';
import { createDeviceEventsService } from './domain/devices/device-events.service.ts';
import { createCurrentValuesService } from './domain/telemetry/current-values.service.ts';
import { createDataPushService } from './domain/telemetry/data-push.service.ts';
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
  const presence = createPresenceService({ repo: createPresenceRepository(db), bus, logger, clock });
  const devices = createDevicesService({ devices: devicesRepo, projects: projectsRepo, bus, clock });
  return {
    bus,
    sessions,
    presence,
    deviceAuth: createDeviceAuthService({ repo: createDeviceAuthRepository(db), bus, clock }),
    commands: createCommandsService({ db, devices: devicesRepo, sessions, bus, presence, clock, logger }),
    currentValues: createCurrentValuesService({ repo: createAttributeValuesRepository(db), devices: devicesRepo, sessions, presence, bus, clock }),
    deviceEvents: createDeviceEventsService({ repo: createDeviceEventsRepository(db), presence, bus, clock }),
    // Creation goes through the devices service: the same rules as POST /api/v1/device (quota, unique key).
    certificates: createCertificateService({ repo: createCertificateRepository(db), devices, clock }),
    dataPush: createDataPushService({ repo: createDataPushRepository(db), devices: devicesRepo, sessions }),
    auth,
    projects: createProjectsService({ projects: projectsRepo, auth, clock }),
    devices,
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
