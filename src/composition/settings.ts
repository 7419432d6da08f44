import { configDefaults, type Config } from '../config.ts';
import type { NotifierSettings } from '../domain/alarms/notifier.ts';

/**
 * How long a report waits for its ingest batch to fill when `INGEST_BATCH_DELAY_MS` is unset: none on PostgreSQL,
 * where what arrives while a batch is written makes the next; 5 ms on the embedded database, which commits on the
 * server's own thread. Why, with the figures: architecture.md §8.
 */
export const ingestBatchDelayMsOf = (driver: 'postgres' | 'pglite'): number => (driver === 'postgres' ? 0 : 5);

/** Server-wide operating values of the services (config.ts); every one has a default. */
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
  /** In a login storm, how long a batch of credential look-ups waits to fill (device-auth.service.ts). */
  loginBatchDelayMs: number;
  /** Alarm webhooks: timeout, attempts, back-off, queue bound (src/domain/alarms/notifier.ts). */
  alarmNotify?: Partial<NotifierSettings>;
}

/**
 * Everything main.ts hands the services, the device listeners and the HTTP servers, from the one
 * parsed configuration. The defaults are config.ts's schema defaults (which read the device
 * transports' own defaults, mqtt-broker/): nothing here or in the callers repeats a number.
 */
export function settingsFromConfig(config: Config, driver: 'postgres' | 'pglite') {
  return {
    services: {
      deviceRateLimit: config.MQTT_RATE_LIMIT,
      deviceRateLimitMax: config.DEVICE_RATE_LIMIT_MAX,
      projectMessageRate: config.PROJECT_MESSAGE_RATE,
      historyRetentionDays: config.HISTORY_RETENTION_DAYS,
      historyCompressAfterDays: config.HISTORY_COMPRESS_AFTER_DAYS,
      historyChunkHours: config.HISTORY_CHUNK_HOURS,
      ingestBatchSize: config.INGEST_BATCH_SIZE,
      ingestBatchDelayMs: config.INGEST_BATCH_DELAY_MS ?? ingestBatchDelayMsOf(driver),
      ingestMaxPending: config.INGEST_MAX_PENDING,
      // PGlite is one connection: parallel batches would only queue behind each other.
      ingestConcurrency: driver === 'postgres' ? config.INGEST_CONCURRENCY : 1,
      loginBatchDelayMs: config.LOGIN_BATCH_DELAY_MS,
      alarmNotify: {
        timeoutMs: config.ALARM_WEBHOOK_TIMEOUT_MS,
        maxAttempts: config.ALARM_WEBHOOK_ATTEMPTS,
        backoffMs: config.ALARM_WEBHOOK_BACKOFF_MS,
        allowNetworks: config.ALARM_WEBHOOK_ALLOW_NETWORKS,
        concurrency: config.ALARM_WEBHOOK_CONCURRENCY,
        projectConcurrency: config.ALARM_WEBHOOK_PROJECT_CONCURRENCY,
        maxPending: config.ALARM_WEBHOOK_MAX_PENDING,
        projectMaxPending: config.ALARM_WEBHOOK_PROJECT_MAX_PENDING,
        breakerFailures: config.ALARM_WEBHOOK_BREAKER_FAILURES,
        breakerCooldownMs: config.ALARM_WEBHOOK_BREAKER_COOLDOWN_MS,
      },
    } satisfies ServiceSettings,
    /** TimescaleDB policies (history.repository.ts applyTimescalePolicies). */
    historyPolicies: {
      chunkHours: config.HISTORY_CHUNK_HOURS,
      compressAfterDays: config.HISTORY_COMPRESS_AFTER_DAYS,
      retentionDays: config.HISTORY_RETENTION_DAYS,
    },
    readiness: { dbTimeoutMs: config.READINESS_DB_TIMEOUT_MS },
    /** One admission for MQTT, MQTT over WebSocket and raw TCP (mqtt-broker/core/admission.ts). */
    admission: {
      pendingPerAddress: config.PENDING_CONNECTIONS_PER_ADDRESS,
      pendingMax: config.PENDING_CONNECTIONS_MAX,
      maxConnections: config.DEVICE_CONNECTIONS_MAX,
      loginRate: config.DEVICE_LOGIN_RATE,
      loginBurst: config.DEVICE_LOGIN_BURST,
    },
    mqtt: {
      maxPacketSize: config.MQTT_MAX_PACKET_SIZE,
      maxSubscriptions: config.MQTT_MAX_SUBSCRIPTIONS,
      maxViewersPerProject: config.MQTT_MAX_VIEWERS_PER_PROJECT,
      connectTimeoutMs: config.MQTT_CONNECT_TIMEOUT_MS,
    },
    tcp: {
      loginTimeoutMs: config.TCP_LOGIN_TIMEOUT_MS,
      idleTimeoutMs: config.TCP_IDLE_TIMEOUT_MS,
      frameGapMs: config.TCP_FRAME_GAP_MS,
      maxMessageSize: config.TCP_MAX_MESSAGE_SIZE,
      maxLoginLength: config.TCP_MAX_LOGIN_LENGTH,
    },
    http: {
      perAddress: config.HTTP_CONNECTIONS_PER_ADDRESS,
      trustProxy: config.TRUST_PROXY,
      headersTimeoutMs: config.HTTP_HEADERS_TIMEOUT_MS,
    },
    // A WebSocket message carries one MQTT packet (or a few): bounded like them.
    webSocket: { maxPayload: config.MQTT_MAX_PACKET_SIZE * 2, trustProxy: config.TRUST_PROXY },
    tlsReloadIntervalMs: config.TLS_RELOAD_INTERVAL_MS,
  };
}
export type ServerSettings = ReturnType<typeof settingsFromConfig>;

/**
 * The services' settings when none are given (tests, the CLI): the configuration's defaults, on the
 * embedded database's terms (one ingest batch at a time, a 5 ms batch wait; createTestApp gives a test on
 * PostgreSQL that database's wait).
 */
export const DEFAULT_SETTINGS: ServiceSettings = settingsFromConfig(configDefaults(), 'pglite').services;
