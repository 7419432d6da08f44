import type { Db } from '../db/client.ts';
import { createAdminsRepository } from '../db/repositories/admins.repository.ts';
import { createAlarmsRepository } from '../db/repositories/alarms.repository.ts';
import { createAppsRepository } from '../db/repositories/apps.repository.ts';
import { createAttributeValuesRepository } from '../db/repositories/attribute-values.repository.ts';
import { createCertificateRepository } from '../db/repositories/certificate.repository.ts';
import { createCommandsRepository } from '../db/repositories/commands.repository.ts';
import { createCredentialsRepository } from '../db/repositories/credentials.repository.ts';
import { createDataMessagesRepository } from '../db/repositories/data-messages.repository.ts';
import { createCustomersRepository } from '../db/repositories/customers.repository.ts';
import { createDeviceAuthRepository } from '../db/repositories/device-auth.repository.ts';
import { createDeviceEventsRepository } from '../db/repositories/device-events.repository.ts';
import { createDeviceInfosRepository } from '../db/repositories/device-infos.repository.ts';
import { createDeviceTypesRepository } from '../db/repositories/device-types.repository.ts';
import { createDevicesRepository } from '../db/repositories/devices.repository.ts';
import { createGatewaysRepository } from '../db/repositories/gateways.repository.ts';
import { createGroupsRepository } from '../db/repositories/groups.repository.ts';
import { createHistoryRepository } from '../db/repositories/history.repository.ts';
import { createLiveEventsRepository } from '../db/repositories/live-events.repository.ts';
import { createNotifyJobsRepository } from '../db/repositories/notify-jobs.repository.ts';
import { createPresenceRepository } from '../db/repositories/presence.repository.ts';
import { createProjectSettingsRepository } from '../db/repositories/project-settings.repository.ts';
import { createProjectsRepository } from '../db/repositories/projects.repository.ts';
import { createViewKeysRepository } from '../db/repositories/view-keys.repository.ts';

/**
 * Every repository of the database layer, built once over one `db` (architecture.md §1): the services
 * (services.ts) receive these instead of building their own, so two services share one history
 * repository (and its partition cache), one devices repository, and so on.
 */
export function createRepositories(db: Db) {
  return {
    admins: createAdminsRepository(db),
    alarms: createAlarmsRepository(db),
    apps: createAppsRepository(db),
    attributeValues: createAttributeValuesRepository(db),
    certificates: createCertificateRepository(db),
    commands: createCommandsRepository(db),
    credentials: createCredentialsRepository(db),
    customers: createCustomersRepository(db),
    dataMessages: createDataMessagesRepository(db),
    deviceAuth: createDeviceAuthRepository(db),
    deviceEvents: createDeviceEventsRepository(db),
    deviceInfos: createDeviceInfosRepository(db),
    deviceTypes: createDeviceTypesRepository(db),
    devices: createDevicesRepository(db),
    gateways: createGatewaysRepository(db),
    groups: createGroupsRepository(db),
    history: createHistoryRepository(db),
    liveEvents: createLiveEventsRepository(db),
    notifyJobs: createNotifyJobsRepository(db),
    presence: createPresenceRepository(db),
    projects: createProjectsRepository(db),
    projectSettings: createProjectSettingsRepository(db),
    viewKeys: createViewKeysRepository(db),
  };
}
export type Repositories = ReturnType<typeof createRepositories>;
