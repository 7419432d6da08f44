import { pino, type Logger } from 'pino';
import { Duplicate } from '../db/errors.ts';
import type { Db } from '../db/client.ts';
import type { AttributeValuesRepository } from '../db/repositories/attribute-values.repository.ts';
import { createRateLimiter, type BucketState } from '../domain/delivery/rate-limiter.ts';
import { createSessionRegistry } from '../domain/delivery/sessions.ts';
import { createDeviceAuthService } from '../domain/devices/device-auth.service.ts';
import { createPresenceService } from '../domain/devices/presence.service.ts';
import { createCommandsService } from '../domain/commands/commands.service.ts';
import { createEventBus } from '../domain/events/event-bus.ts';
import { createLiveEvents } from '../domain/events/live-events.ts';
import { createCertificateService } from '../domain/devices/certificate.service.ts';
import { createDeviceEventsService } from '../domain/devices/device-events.service.ts';
import { createCurrentValuesService } from '../domain/telemetry/current-values.service.ts';
import { createDataStreamsService } from '../domain/telemetry/data-streams.service.ts';
import { createHistoryService } from '../domain/telemetry/history.service.ts';
import { createIngest, RECEIPT_WINDOW_MS } from '../domain/telemetry/ingest.ts';
import { createCurrentCache } from '../domain/telemetry/current-cache.ts';
import { createRetention } from '../domain/telemetry/retention.ts';
import { createProjectSettingsService } from '../domain/projects/project-settings.service.ts';
import { createAdminsService } from '../domain/admins/admins.service.ts';
import { createAppsService } from '../domain/apps/apps.service.ts';
import { createMachineSecrets } from '../lib/passwords.ts';
import { createAuthService } from '../domain/auth/auth.service.ts';
import { createCustomersService } from '../domain/customers/customers.service.ts';
import { createDeviceTypesService } from '../domain/device-types/device-types.service.ts';
import { createDevicesService } from '../domain/devices/devices.service.ts';
import { createExtendInfosService } from '../domain/devices/extend-infos.service.ts';
import { createGroupsService } from '../domain/groups/groups.service.ts';
import { createGatewaysService } from '../domain/gateways/gateways.service.ts';
import { createProjectsService } from '../domain/projects/projects.service.ts';
import { createViewKeyService } from '../domain/projects/view-key.service.ts';
import { createAlarmsService } from '../domain/alarms/alarms.service.ts';
import { NO_METRICS, type MetricsPort } from '../domain/metrics-port.ts';
import type { Cluster } from '../cluster/cluster.ts';
import { createClusterPresence } from '../cluster/presence.ts';
import { createClusterBus } from '../cluster/bus.ts';
import { createClusterJobs, JOB_LEASES } from '../cluster/jobs.ts';
import { createClusterSessions, linkCommandReplies } from '../cluster/sessions.ts';
import { ServiceUnavailable } from '../errors.ts';
import { createRepositories, type Repositories } from './repositories.ts';
import { DEFAULT_SETTINGS, type ServiceSettings } from './settings.ts';

export { DEFAULT_SETTINGS, type ServiceSettings } from './settings.ts';

export interface ServiceDeps {
  db: Db;
  /** The repositories over `db` (repositories.ts); built here when not given. */
  repositories?: Repositories;
  clock?: () => number;
  /** Each component logs through its own child (`component`: presence, ingest, alarms, …). */
  logger?: Pick<Logger, 'child'>;
  settings?: Partial<ServiceSettings>;
  /** The server secret (JWT secret) that keys machine-secret hashes (passwords.ts); unset = argon2id. */
  serverSecret?: string;
  /** Cluster mode (docs/cluster.md): this node's link to the others; unset = one node. */
  cluster?: Cluster | undefined;
  /** The operator's metrics (src/metrics/, docs/metrics.md); unset = off, nothing counted. */
  metrics?: MetricsPort | undefined;
}

/** Wires every domain service once, over the repositories; HTTP routes, the broker and the CLI share them. */
export function createServices({
  db,
  repositories: repos = createRepositories(db),
  clock = Date.now,
  logger = pino({ level: 'silent' }),
  settings: given = {},
  serverSecret,
  cluster,
  metrics = NO_METRICS,
}: ServiceDeps) {
  const settings = { ...DEFAULT_SETTINGS, ...given };
  const log = (component: string) => logger.child({ component });
  const bus = createEventBus();
  // Cluster mode: sessions of every node are reachable here, and the newest login wins across nodes
  // (docs/cluster.md); the cluster's failures reach callers as the domain's 503.
  const sessionDirectory = cluster
    ? createClusterSessions({
        cluster,
        local: () => sessions,
        // Presence orders a device's connects and disconnects by it (presence.service.ts).
        onEpoch: (deviceId, epoch) => presence.sessionEpoch(deviceId, epoch),
        unavailable: (err) => new ServiceUnavailable(err.message),
        logger: log('sessions'),
        // After a NATS outage: sessions of devices revoked or changed meanwhile close (docs/cluster.md §5).
        changedSince: (projectId, ids, since) => repos.devices.changedSince(projectId, ids, since),
        // A device's message bucket follows it to the node of its newer login (docs/cluster.md §7).
        buckets: {
          export: (deviceId) => rateLimiter.export(deviceId),
          adopt: (session, state) => {
            const s = state as Partial<BucketState> | undefined;
            if (typeof s?.tokens !== 'number' || typeof s.at !== 'number') return;
            const bucket = { tokens: s.tokens, at: s.at };
            void projectSettings.deviceRateLimit(session.projectId).then(
              (rate) => rateLimiter.adopt(session.deviceId, bucket, rate),
              () => {},
            );
          },
        },
      })
    : undefined;
  const sessions = createSessionRegistry({ directory: sessionDirectory });
  // A reset token or a deleted device ends its live connection at once, on whichever node (device-protocol.md §1).
  // The origin's copy kicks everywhere; a copy from elsewhere (another node, or the CLI, which holds no sessions
  // and sends no kick) closes this node's own sessions only: closing twice is harmless, missing one is not.
  bus.on('device.credentials_revoked', ({ deviceId }, { remote }) =>
    remote ? sessions.kickLocal(deviceId, 'credentials revoked') : sessions.kick(deviceId, 'credentials revoked'),
  );
  bus.on('project.deleted', ({ projectId }, { remote }) =>
    remote
      ? sessions.kickProjectLocal(projectId, 'project deleted')
      : sessions.kickProject(projectId, 'project deleted'),
  );
  const machineSecrets = createMachineSecrets(serverSecret);
  const auth = createAuthService({
    credentials: repos.credentials,
    apps: repos.apps,
    machineSecrets,
    clock,
    bus,
  });
  const projectsRepo = repos.projects;
  const devicesRepo = repos.devices;
  // Written connects and disconnects recount the cached totals and stats (`online` is live: http-api.md §3).
  const presence = createPresenceService({
    repo: repos.presence,
    bus,
    logger: log('presence'),
    clock,
    onOnlineWritten: (projectIds) => {
      projectIds.forEach((p) => devices.countsChanged(p));
      clusterPresence?.countsChanged(projectIds);
    },
    // Cluster mode: online state written under the session rules of docs/cluster.md §3.
    node: cluster?.nodeId,
    holds: (deviceId) => sessions.isOnline(deviceId),
  });
  const devices = createDevicesService({ devices: devicesRepo, projects: projectsRepo, bus, clock, presence });
  // Cluster mode: a lost node's devices go offline, a node back from an outage re-asserts its sessions (docs/cluster.md §3).
  const clusterPresence = cluster
    ? createClusterPresence({
        cluster,
        repo: repos.presence,
        presence,
        bus,
        countsChanged: (projectId) => devices.countsChanged(projectId),
        logger: log('presence'),
        clock,
      })
    : undefined;
  // A changed type, stream definition or attribute model reaches the caches of every node at once
  // (device_type.changed; docs/cluster.md §4).
  const deviceTypes = createDeviceTypesService({
    types: repos.deviceTypes,
    clock,
    onTypeChanged: (projectId, typeId) => bus.emit('device_type.changed', { projectId, typeId }),
  });
  const projectSettings = createProjectSettingsService({
    repo: repos.projectSettings,
    clock,
    bus,
    defaults: {
      deviceRateLimit: settings.deviceRateLimit,
      deviceRateLimitMax: settings.deviceRateLimitMax,
      historyRetentionDays: settings.historyRetentionDays,
    },
  });
  // Device message rates for every transport (device-protocol.md §3 "rate limits").
  const rateLimiter = createRateLimiter({ projectRate: settings.projectMessageRate, clock });
  const historyRepo = repos.history;
  const attributeValuesRepo = repos.attributeValues;
  // Cluster mode: jobs run once cluster-wide under leases, alarm timers on the device's node (docs/cluster.md §4).
  const clusterJobs = cluster ? createClusterJobs({ cluster, logger: log('cluster-jobs') }) : undefined;
  const currentCache = createCurrentCache({
    history: historyRepo,
    clock,
    logger: log('current-cache'),
    ...(cluster && clusterJobs
      ? {
          cluster: {
            node: cluster.nodeId,
            keeper: clusterJobs.runs(JOB_LEASES.currentCheckpoint),
            alive: () => cluster.aliveNodes(),
          },
        }
      : {}),
  });
  bus.on('device.attributes_removed', ({ deviceId, identifiers }) => currentCache.forget(deviceId, identifiers));
  const ingest = createIngest({
    // Partitions, history rows and the current values that cannot wait; fresh ones go to the cache.
    write: (rows, batchId, marks) => currentCache.write(rows, batchId, marks),
    committed: (batchId) => historyRepo.committed(batchId),
    releaseReceipts: (batchIds) => historyRepo.releaseReceipts(batchIds),
    isCommitConflict: (err) => err instanceof Duplicate && err.what === 'ingest_commit',
    batchSize: settings.ingestBatchSize,
    batchDelayMs: settings.ingestBatchDelayMs,
    maxPending: settings.ingestMaxPending,
    concurrency: settings.ingestConcurrency,
    logger: log('ingest'),
    metrics,
  });
  // Current values as stored, overlaid with the fresh ones the cache has not written yet (current-cache.ts).
  const listCurrentValues: AttributeValuesRepository['list'] = async (projectId, deviceId, keys) =>
    currentCache.overlay(deviceId, await attributeValuesRepo.list(projectId, deviceId, keys), keys);
  const history = createHistoryService({
    history: historyRepo,
    values: {
      list: listCurrentValues,
      remove: async (projectId, deviceId, keys) => {
        // Values not yet written are dropped on every node (the device may be connected to another).
        bus.emit('device.attributes_removed', { projectId, deviceId, ...(keys ? { identifiers: keys } : {}) });
        await attributeValuesRepo.remove(projectId, deviceId, keys);
      },
    },
    devices: devicesRepo,
    attributeModels: (projectId, typeId) => deviceTypes.attributeModels(projectId, typeId),
    bus,
    forgetDevice: (deviceId) => currentCache.forget(deviceId),
    logger: log('history'),
    clock,
  });
  const currentValues = createCurrentValuesService({
    repo: { list: listCurrentValues },
    devices: devicesRepo,
    sessions,
    presence,
    bus,
    ingest,
    models: history.modelLookup,
    retention: (projectId) => projectSettings.oldestKept(projectId),
    clock,
    takeReceipt: (receipt) => historyRepo.takeReceipt(receipt, clock() - RECEIPT_WINDOW_MS, clock()),
  });
  // Custom data streams (device-protocol.md §7); JSON streams mapped to attributes report through currentValues.
  // Alarm rules evaluated on reports and connection changes (README "Alarms"); a changed alarm state recounts the stats.
  const alarms = createAlarmsService({
    repo: repos.alarms,
    jobs: repos.notifyJobs,
    bus,
    clock,
    logger: log('alarms'),
    onStateChanged: (projectId) => devices.countsChanged(projectId),
    isOnline: (deviceId) => sessions.get(deviceId) !== undefined,
    metrics,
    ...(settings.alarmNotify ? { notifier: settings.alarmNotify } : {}),
    ...(clusterJobs
      ? {
          cluster: {
            node: clusterJobs.nodeId,
            claimMs: clusterJobs.leaseMs,
            ownership: {
              ...clusterJobs.alarmOwnership(),
              // Through the session directory (docs/cluster.md §2); unknown when NATS is away.
              connectedAnywhere: (deviceId: string) =>
                sessions.locate(deviceId).then(
                  (session) => session !== undefined,
                  () => false,
                ),
            },
          },
        }
      : {}),
  });
  if (clusterJobs) {
    const warnOf = (what: string) => (err: unknown) => log('cluster-jobs').error({ err }, what);
    const keeper = clusterJobs.runs(JOB_LEASES.currentCheckpoint);
    clusterJobs.onTaken(
      JOB_LEASES.alarmOrphans,
      () => void alarms.adopt().catch(warnOf('orphan alarm timers not armed')),
    );
    clusterJobs.onTaken(JOB_LEASES.currentCheckpoint, () => {
      // Tried again while the database is away, as long as this node keeps the checkpoint (cluster/retry.ts).
      void clusterJobs.retrying(
        'recovering the current values of lost nodes',
        () => currentCache.keeperTaken(),
        keeper,
      );
    });
    clusterJobs.onNodeLost((node) => {
      // Tried again while the database is away (cluster/retry.ts), as long as the node is still lost.
      const lost = () => !cluster!.isAlive(node);
      // The lost node's devices: offline ones are orphans now, online ones move to the reaper's node.
      const adopt = () => clusterJobs.retrying('arming the alarm timers of a lost node', () => alarms.adopt(), lost);
      void adopt();
      // Again once its unwritten values and activity are recovered from history (the keeper's rebuild, here or
      // on another node within a lease): a device whose only report it stored is watched too.
      void clusterJobs
        .retrying(
          'recovering the current values of a lost node',
          () => currentCache.nodeLost(node),
          () => lost() && keeper(),
        )
        .then(() => currentCache.settled(node))
        .then(() => clusterJobs.afterLease())
        .then((waited) => waited && adopt());
    });
  }
  const dataStreams = createDataStreamsService({
    repo: repos.dataMessages,
    devices: devicesRepo,
    sessions,
    presence,
    currentValues,
    bus,
    clock,
  });
  bus.on('device_type.changed', ({ projectId, typeId }) => dataStreams.forgetType(projectId, typeId));
  // Cluster mode: broadcast events reach every node's bus, live events the nodes watching their project
  // (docs/cluster.md §4).
  const clusterBus = cluster && createClusterBus({ cluster, bus, logger: log('cluster-bus') });
  // Application subscriptions and API event streams: one fan-out of the bus (device-protocol.md §9, http-api.md §4.14).
  const liveRepo = repos.liveEvents;
  const liveEvents = createLiveEvents({
    bus,
    deviceInfo: liveRepo.deviceInfo,
    boundDeviceIds: liveRepo.boundDeviceIds,
    logger: log('live-events'),
    ...(clusterBus ? { interest: clusterBus.interest } : {}),
  });
  clusterBus?.setLive(liveEvents);
  const commandReplies = cluster ? linkCommandReplies(cluster, (commandId) => commands.wake(commandId)) : undefined;
  const commands = createCommandsService({
    repo: repos.commands,
    devices: devicesRepo,
    sessions,
    bus,
    presence,
    clock,
    logger: log('commands'),
    metrics,
    // A reply stored here wakes a synchronous caller waiting on another node (docs/cluster.md).
    ...(commandReplies ? { onReplied: commandReplies.announce } : {}),
    ...(clusterJobs ? { sweepRuns: clusterJobs.runs(JOB_LEASES.commandSweeper) } : {}),
  });
  return {
    /** What the transports count (the device edge's port) and the domain counts (docs/metrics.md). */
    metrics,
    cluster,
    clusterBus,
    sessionDirectory,
    /**
     * Cluster mode, before presence starts: epochs from a session directory that is gone (its bucket made
     * anew counts from 1 again) are forgotten, or every new session's online write would be refused as older.
     */
    clusterStart: sessionDirectory
      ? async () => {
          const last = await sessionDirectory.lastEpoch();
          const forgotten = await repos.presence.forgetEpochsAbove(last);
          if (forgotten)
            log('sessions').warn({ devices: forgotten, last }, 'session epochs of a lost directory forgotten');
        }
      : undefined,
    bus,
    liveEvents,
    liveEventsRepo: liveRepo,
    sessions,
    rateLimiter,
    presence,
    clusterPresence,
    clusterJobs,
    deviceAuth: createDeviceAuthService({
      repo: repos.deviceAuth,
      bus,
      clock,
      gatherMs: settings.loginBatchDelayMs,
    }),
    commands,
    currentValues,
    ingest,
    currentCache,
    history,
    historyStore: historyRepo,
    retention: createRetention({
      history: historyRepo,
      messages: repos.dataMessages,
      settings: projectSettings,
      defaultDays: settings.historyRetentionDays,
      clock,
      logger: log('retention'),
      ...(clusterJobs ? { runs: clusterJobs.runs(JOB_LEASES.retention) } : {}),
    }),
    projectSettings,
    settings,
    deviceEvents: createDeviceEventsService({ repo: repos.deviceEvents, presence, bus, clock }),
    // Creation goes through the devices service: the same rules as POST /api/v1/device (quota, unique key).
    certificates: createCertificateService({ repo: repos.certificates, devices, clock, bus }),
    dataStreams,
    auth,
    projects: createProjectsService({ projects: projectsRepo, history: historyRepo, auth, bus, machineSecrets, clock }),
    devices,
    extendInfos: createExtendInfosService({ devices: devicesRepo, infos: repos.deviceInfos, clock }),
    deviceTypes,
    groups: createGroupsService({ groups: repos.groups, clock }),
    // Gateways and their sub-devices (device-protocol.md §8); the broker resolves addresses through it.
    gateways: createGatewaysService({
      repo: repos.gateways,
      devices: devicesRepo,
      sessions,
      bus,
      currentValues,
      history,
      projectSettings,
      rateLimiter,
      clock,
    }),
    customers: createCustomersService({
      customers: repos.customers,
      clock,
      auth,
      bus,
      passwordMin: (projectId) => projectSettings.customerPasswordMin(projectId),
    }),
    apps: createAppsService({ apps: repos.apps, clock, auth, machineSecrets }),
    admins: createAdminsService({ admins: repos.admins, clock, auth }),
    viewKey: createViewKeyService({ viewKeys: repos.viewKeys, clock, bus, machineSecrets }),
    alarms,
  };
}
export type Services = ReturnType<typeof createServices>;
