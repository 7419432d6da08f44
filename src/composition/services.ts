import { pino, type Logger } from 'pino';
import { uniqueViolation } from '../db/errors.ts';
import type { Db } from '../db/client.ts';
import { createDeviceAuthRepository } from '../db/repositories/device-auth.repository.ts';
import { createPresenceRepository } from '../db/repositories/presence.repository.ts';
import { createRateLimiter } from '../domain/delivery/rate-limiter.ts';
import { createSessionRegistry } from '../domain/delivery/sessions.ts';
import { createDeviceAuthService } from '../domain/devices/device-auth.service.ts';
import { createPresenceService } from '../domain/devices/presence.service.ts';
import { createCommandsService } from '../domain/commands/commands.service.ts';
import { createEventBus } from '../domain/events/event-bus.ts';
import { createLiveEvents } from '../domain/events/live-events.ts';
import { createLiveEventsRepository } from '../db/repositories/live-events.repository.ts';
import { createAttributeValuesRepository } from '../db/repositories/attribute-values.repository.ts';
import { createCertificateRepository } from '../db/repositories/certificate.repository.ts';
import { createDataMessagesRepository } from '../db/repositories/data-messages.repository.ts';
import { createDeviceEventsRepository } from '../db/repositories/device-events.repository.ts';
import { createCertificateService } from '../domain/devices/certificate.service.ts';
import { createDeviceEventsService } from '../domain/devices/device-events.service.ts';
import { createCurrentValuesService } from '../domain/telemetry/current-values.service.ts';
import { createDataStreamsService } from '../domain/telemetry/data-streams.service.ts';
import { createHistoryRepository } from '../db/repositories/history.repository.ts';
import { createHistoryService } from '../domain/telemetry/history.service.ts';
import { createIngest } from '../domain/telemetry/ingest.ts';
import { createCurrentCache } from '../domain/telemetry/current-cache.ts';
import { createRetention } from '../domain/telemetry/retention.ts';
import { createProjectSettingsService } from '../domain/projects/project-settings.service.ts';
import { createCredentialsRepository } from '../db/repositories/credentials.repository.ts';
import { createDeviceInfosRepository } from '../db/repositories/device-infos.repository.ts';
import { createDevicesRepository } from '../db/repositories/devices.repository.ts';
import { createProjectsRepository } from '../db/repositories/projects.repository.ts';
import { createAdminsService } from '../domain/admins/admins.service.ts';
import { createAppsService } from '../domain/apps/apps.service.ts';
import { createAppsRepository } from '../db/repositories/apps.repository.ts';
import { createMachineSecrets } from '../lib/passwords.ts';
import { createAuthService } from '../domain/auth/auth.service.ts';
import { createCustomersService } from '../domain/customers/customers.service.ts';
import { createDeviceTypesService } from '../domain/device-types/device-types.service.ts';
import { createDevicesService } from '../domain/devices/devices.service.ts';
import { createExtendInfosService } from '../domain/devices/extend-infos.service.ts';
import { createGroupsService } from '../domain/groups/groups.service.ts';
import { createGatewaysRepository } from '../db/repositories/gateways.repository.ts';
import { createGatewaysService } from '../domain/gateways/gateways.service.ts';
import { createProjectsService } from '../domain/projects/projects.service.ts';
import { createViewKeyService } from '../domain/projects/view-key.service.ts';
import { createAlarmsRepository } from '../db/repositories/alarms.repository.ts';
import { createNotifyJobsRepository } from '../db/repositories/notify-jobs.repository.ts';
import { createAlarms } from '../domain/alarms/alarms.service.ts';
import type { NotifierSettings } from '../domain/alarms/notifier.ts';

/** Server-wide operating values (config.ts); every one has a default. */
export interface ServiceSettings {
  /** Messages per second per device unless the project sets its own (MQTT_RATE_LIMIT). */
  deviceRateLimit: number;
  /** The most a project may set as its device rate (DEVICE_RATE_LIMIT_MAX). */
  deviceRateLimitMax: number;
  /** Messages per second of all the devices of one project together; 0 = unlimited (PROJECT_MESSAGE_RATE). */
  projectMessageRate: number;
  historyRetentionDays: number;
  historyCompressAfterDays: number;
  historyChunkHours: number;
  ingestBatchSize: number;
  ingestBatchDelayMs: number;
  ingestMaxPending: number;
  /** Batches written at once: 1 on the embedded database (one connection), more on PostgreSQL. */
  ingestConcurrency: number;
  /** Alarm webhooks: timeout, attempts, back-off, queue bound (src/domain/alarms/notifier.ts). */
  alarmNotify?: Partial<NotifierSettings>;
}

export const DEFAULT_SETTINGS: ServiceSettings = {
  deviceRateLimit: 50,
  deviceRateLimitMax: 1_000,
  projectMessageRate: 5_000,
  historyRetentionDays: 365,
  historyCompressAfterDays: 7,
  historyChunkHours: 24,
  ingestBatchSize: 5_000,
  ingestBatchDelayMs: 5,
  ingestMaxPending: 100_000,
  ingestConcurrency: 1,
};

export interface ServiceDeps {
  db: Db;
  clock?: () => number;
  logger?: Pick<Logger, 'error' | 'warn' | 'info'>;
  settings?: Partial<ServiceSettings>;
  /** The server secret (JWT secret) that keys machine-secret hashes (passwords.ts); unset = argon2id. */
  serverSecret?: string;
}

/** Builds every domain service once; HTTP routes, the broker and the CLI share them. */
export function createServices({
  db,
  clock = Date.now,
  logger = pino({ level: 'silent' }),
  settings: given = {},
  serverSecret,
}: ServiceDeps) {
  const settings = { ...DEFAULT_SETTINGS, ...given };
  const bus = createEventBus();
  const sessions = createSessionRegistry();
  // A reset token or a deleted device ends its live connection at once (device-protocol.md §1).
  bus.on('device.credentials_revoked', ({ deviceId }) => sessions.kick(deviceId, 'credentials revoked'));
  bus.on('project.deleted', ({ projectId }) => sessions.kickProject(projectId, 'project deleted'));
  const machineSecrets = createMachineSecrets(serverSecret);
  const auth = createAuthService({
    credentials: createCredentialsRepository(db),
    apps: createAppsRepository(db),
    machineSecrets,
    clock,
    bus,
  });
  const projectsRepo = createProjectsRepository(db);
  const devicesRepo = createDevicesRepository(db);
  // Written connects and disconnects recount the cached totals and stats (`online` is live: http-api.md §3).
  const presence = createPresenceService({
    repo: createPresenceRepository(db),
    bus,
    logger,
    clock,
    onOnlineWritten: (projectIds) => projectIds.forEach((p) => devices.countsChanged(p)),
  });
  const devices = createDevicesService({ devices: devicesRepo, projects: projectsRepo, bus, clock, presence });
  // A changed stream definition or TCP setting reaches the data-stream checks at once.
  const deviceTypes = createDeviceTypesService({
    db,
    clock,
    onDataSettingsChanged: (projectId, typeId) => dataStreams.forgetType(projectId, typeId),
  });
  const projectSettings = createProjectSettingsService({
    db,
    clock,
    defaults: {
      deviceRateLimit: settings.deviceRateLimit,
      deviceRateLimitMax: settings.deviceRateLimitMax,
      historyRetentionDays: settings.historyRetentionDays,
    },
  });
  // Device message rates for every transport (device-protocol.md §3 "rate limits").
  const rateLimiter = createRateLimiter({ projectRate: settings.projectMessageRate, clock });
  const historyRepo = createHistoryRepository(db);
  const attributeValuesRepo = createAttributeValuesRepository(db);
  const currentCache = createCurrentCache({ db, history: historyRepo, clock, logger });
  const ingest = createIngest({
    // Partitions first (DDL outside the batch), then one transaction: history rows, and the current
    // values that cannot wait (pushes, cloud, back-dated reports); fresh reports' current values go
    // to the cache once committed and are written once per second.
    write: async (rows, batchId) => {
      const days = rows.filter((r) => r.history).map((r) => historyRepo.dayOf(r.ts));
      await historyRepo.ensurePartitions(days);
      const w = currentCache.begin();
      try {
        const fresh = rows.filter(w.fresh);
        const currentNow = fresh.length ? rows.filter((r) => !w.fresh(r)) : rows;
        if (!currentNow.length) {
          // Only fresh reports (the steady state): the history INSERT alone, its own transaction,
          // one round trip on PostgreSQL.
          await historyRepo.insertAlone(rows, batchId, clock());
        } else {
          await db.transaction(async (tx) => {
            await historyRepo.insert(tx, rows, batchId, clock());
            await historyRepo.upsertCurrent(tx, currentNow);
          });
        }
        w.committed(fresh);
      } catch (err) {
        // "no partition for row": a partition this node knew was dropped elsewhere (retention on another
        // node): forget what it knew, so the retry creates it again.
        const pgErr =
          (err as { cause?: { code?: string; message?: string } })?.cause ??
          (err as { code?: string; message?: string });
        if (pgErr?.code === '23514' && /no partition of relation/.test(pgErr.message ?? '')) {
          historyRepo.forgetPartitions();
          throw Object.assign(new Error('history partition missing; recreating it'), { code: '08000', cause: err });
        }
        throw err;
      } finally {
        w.end();
      }
    },
    committed: (batchId) => historyRepo.committed(batchId),
    isCommitConflict: (err) => uniqueViolation(err)?.includes('ingest_commits') === true,
    batchSize: settings.ingestBatchSize,
    batchDelayMs: settings.ingestBatchDelayMs,
    maxPending: settings.ingestMaxPending,
    concurrency: settings.ingestConcurrency,
    logger,
  });
  const history = createHistoryService({
    history: historyRepo,
    values: {
      list: async (projectId, deviceId, keys) =>
        currentCache.overlay(deviceId, await attributeValuesRepo.list(projectId, deviceId, keys), keys),
      remove: async (projectId, deviceId, keys) => {
        currentCache.forget(deviceId, keys);
        await attributeValuesRepo.remove(projectId, deviceId, keys);
      },
    },
    devices: devicesRepo,
    attributeModels: (projectId, typeId) => deviceTypes.attributeModels(projectId, typeId),
    clock,
  });
  // A deleted device's history goes with it (the history has no foreign key: it would tax every insert).
  bus.on('device.deleted', ({ deviceId }) => {
    currentCache.forget(deviceId);
    historyRepo
      .removeDevice(deviceId)
      .catch((err: unknown) => logger.warn({ err, deviceId }, 'history of a deleted device not removed'));
  });
  const currentValues = createCurrentValuesService({
    repo: {
      list: async (projectId, deviceId, keys) =>
        currentCache.overlay(deviceId, await attributeValuesRepo.list(projectId, deviceId, keys), keys),
    },
    devices: devicesRepo,
    sessions,
    presence,
    bus,
    ingest,
    models: history.modelLookup,
    retention: (projectId) => projectSettings.oldestKept(projectId),
    clock,
  });
  // Custom data streams (device-protocol.md §7); JSON streams mapped to attributes report through currentValues.
  // Alarm rules evaluated on reports and connection changes (README "Alarms"); a changed alarm state recounts the stats.
  const alarms = createAlarms({
    repo: createAlarmsRepository(db),
    jobs: createNotifyJobsRepository(db),
    bus,
    clock,
    logger,
    onStateChanged: (projectId) => devices.countsChanged(projectId),
    isOnline: (deviceId) => sessions.get(deviceId) !== undefined,
    ...(settings.alarmNotify ? { notifier: settings.alarmNotify } : {}),
  });
  const dataStreams = createDataStreamsService({
    repo: createDataMessagesRepository(db),
    devices: devicesRepo,
    sessions,
    presence,
    currentValues,
    bus,
    clock,
  });
  // Application subscriptions and API event streams: one fan-out of the bus (device-protocol.md §9, http-api.md §4.14).
  const liveRepo = createLiveEventsRepository(db);
  const liveEvents = createLiveEvents({
    bus,
    deviceInfo: liveRepo.deviceInfo,
    boundDeviceIds: liveRepo.boundDeviceIds,
    logger,
  });
  return {
    bus,
    liveEvents,
    liveEventsRepo: liveRepo,
    sessions,
    rateLimiter,
    presence,
    deviceAuth: createDeviceAuthService({ repo: createDeviceAuthRepository(db), bus, clock }),
    commands: createCommandsService({ db, devices: devicesRepo, sessions, bus, presence, clock, logger }),
    currentValues,
    ingest,
    currentCache,
    history,
    historyStore: historyRepo,
    retention: createRetention({
      db,
      history: historyRepo,
      settings: projectSettings,
      defaultDays: settings.historyRetentionDays,
      clock,
      logger,
    }),
    projectSettings,
    settings,
    deviceEvents: createDeviceEventsService({ repo: createDeviceEventsRepository(db), presence, bus, clock }),
    // Creation goes through the devices service: the same rules as POST /api/v1/device (quota, unique key).
    certificates: createCertificateService({ repo: createCertificateRepository(db), devices, clock, bus }),
    dataStreams,
    /** The same service under the name the control and application routes use. */
    dataPush: dataStreams,
    auth,
    projects: createProjectsService({ projects: projectsRepo, auth, bus, machineSecrets, clock }),
    devices,
    extendInfos: createExtendInfosService({ devices: devicesRepo, infos: createDeviceInfosRepository(db), clock }),
    deviceTypes,
    groups: createGroupsService({ db, clock }),
    // Gateways and their sub-devices (device-protocol.md §8); the broker resolves addresses through it.
    gateways: createGatewaysService({ repo: createGatewaysRepository(db), devices: devicesRepo, sessions, bus, clock }),
    customers: createCustomersService({
      db,
      clock,
      auth,
      bus,
      passwordMin: (projectId) => projectSettings.customerPasswordMin(projectId),
    }),
    apps: createAppsService({ db, clock, auth, machineSecrets }),
    admins: createAdminsService({ db, clock, auth }),
    viewKey: createViewKeyService({ db, clock, bus, machineSecrets }),
    alarms,
  };
}
export type Services = ReturnType<typeof createServices>;
