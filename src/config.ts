import { z } from 'zod';
import { ADMISSION_DEFAULTS } from '../mqtt-broker/core/admission.ts';
import { MQTT_DEFAULTS, TCP_DEFAULTS } from '../mqtt-broker/core/defaults.ts';
import { DEFAULT_NOTIFIER_SETTINGS as WEBHOOK } from './domain/alarms/notifier.ts';
import { parseNetworks } from './lib/net-guard.ts';

/** A listener's port or `off` (docs/tls.md §3); 0 = any free port; unset = `fallback` (undefined: decided later). */
const listenPort = (fallback?: number) =>
  z
    .union([z.string(), z.number()])
    .optional()
    .transform((v, ctx): number | 'off' | undefined => {
      if (v === undefined) return fallback;
      const text = String(v).trim().toLowerCase();
      if (text === 'off') return 'off';
      const n = Number(text);
      if (Number.isInteger(n) && n >= 0 && n <= 65535) return n;
      ctx.addIssue({ code: 'custom', message: 'must be a port number (0-65535, 0 = any free port) or "off"' });
      return z.NEVER;
    });
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

/** Every setting of the server, read from the environment once (architecture.md §7). */
export const configSchema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    HOST: z.string().min(1).default('0.0.0.0'),
    HTTP_PORT: listenPort(8080) as z.ZodType<number | 'off'>,
    MQTT_PORT: listenPort(1883) as z.ZodType<number | 'off'>,
    TCP_PORT: listenPort(28801) as z.ZodType<number | 'off'>,
    /** TLS (docs/tls.md): certificate (chain) and key files, PEM; with them HTTPS, MQTT and raw TCP over TLS listen too. */
    TLS_CERT_FILE: optionalString,
    TLS_KEY_FILE: optionalString,
    HTTPS_PORT: listenPort(),
    MQTTS_PORT: listenPort(),
    TCPS_PORT: listenPort(),
    /** How often the certificate files are read besides the directory watches (src/tls/reloader.ts). */
    TLS_RELOAD_INTERVAL_MS: z.coerce.number().int().min(1_000).max(86_400_000).default(60_000),
    DATA_DIR: z.string().min(1).default('./data'),
    DATABASE_URL: optionalString.pipe(
      z
        .string()
        .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
        .optional(),
    ),
    JWT_SECRET: optionalString.pipe(z.string().min(32, 'must be at least 32 characters').optional()),
    PLATFORM_TOKEN: optionalString.pipe(z.string().min(16, 'must be at least 16 characters').optional()),
    /** Set: GET /metrics answers Prometheus text to `Authorization: Bearer <METRICS_TOKEN>`; unset: 404 (docs/metrics.md). */
    METRICS_TOKEN: optionalString.pipe(z.string().min(16, 'must be at least 16 characters').optional()),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    BODY_LIMIT: z.coerce
      .number()
      .int()
      .min(1024)
      .default(1024 * 1024),
    LOGIN_RATE_LIMIT: z.coerce.number().int().min(1).default(10),
    LOGIN_RATE_WINDOW_MS: z.coerce.number().int().min(1000).default(60_000),
    /** Device certificate requests (self-provisioning) per second per client address, and the burst (src/http/routes/device-access). */
    PROVISION_RATE: z.coerce.number().min(0.01).max(1_000_000).default(20),
    PROVISION_BURST: z.coerce.number().int().min(1).max(1_000_000).default(500),
    /** Devices auto-created by certificate requests per second per project, and the burst (a factory powering on 1,000). */
    PROVISION_CREATE_RATE: z.coerce.number().min(0.01).max(1_000_000).default(5),
    PROVISION_CREATE_BURST: z.coerce.number().int().min(1).max(1_000_000).default(1_000),
    MQTT_MAX_PACKET_SIZE: z.coerce.number().int().min(1024).max(268_435_455).default(MQTT_DEFAULTS.maxPacketSize),
    MQTT_RATE_LIMIT: z.coerce.number().int().min(1).max(100_000).default(50),
    /** Device and project message rates (src/domain/delivery/rate-limiter.ts). */
    DEVICE_RATE_LIMIT_MAX: z.coerce.number().int().min(1).max(100_000).default(1_000),
    PROJECT_MESSAGE_RATE: z.coerce.number().int().min(0).max(10_000_000).default(5_000),
    MQTT_MAX_SUBSCRIPTIONS: z.coerce.number().int().min(8).max(100_000).default(MQTT_DEFAULTS.maxSubscriptions),
    MQTT_MAX_VIEWERS_PER_PROJECT: z.coerce
      .number()
      .int()
      .min(1)
      .max(100_000)
      .default(MQTT_DEFAULTS.maxViewersPerProject),
    /** HTTP sockets (src/http/connections.ts). */
    HTTP_CONNECTIONS_PER_ADDRESS: z.coerce.number().int().min(0).max(1_000_000).default(256),
    HTTP_HEADERS_TIMEOUT_MS: z.coerce.number().int().min(1_000).max(600_000).default(10_000),
    /** Live event streams, GET /api/v1/events (http-api.md §4.14, src/http/routes/events/). */
    EVENTS_STREAMS_PER_PROJECT: z.coerce.number().int().min(1).max(1_000_000).default(200),
    EVENTS_STREAMS_PER_ADDRESS: z.coerce.number().int().min(1).max(1_000_000).default(20),
    EVENTS_STREAMS_PER_PRINCIPAL: z.coerce.number().int().min(1).max(1_000_000).default(10),
    EVENTS_QUEUE_BYTES: z.coerce
      .number()
      .int()
      .min(1024)
      .max(1024 * 1024 * 1024)
      .default(1024 * 1024),
    EVENTS_KEEPALIVE_MS: z.coerce.number().int().min(100).max(3_600_000).default(15_000),
    // The defaults of the device transports, the webhooks and the admission are those components' own
    // (mqtt-broker/core/defaults.ts, mqtt-broker/core/admission.ts, src/domain/alarms/notifier.ts).
    /** Raw TCP devices (device-protocol.md §6, mqtt-broker/README.md "Raw TCP devices"). */
    TCP_LOGIN_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(TCP_DEFAULTS.loginTimeoutMs),
    TCP_IDLE_TIMEOUT_MS: z.coerce.number().int().min(1000).max(86_400_000).default(TCP_DEFAULTS.idleTimeoutMs),
    TCP_FRAME_GAP_MS: z.coerce.number().int().min(10).max(10_000).default(TCP_DEFAULTS.frameGapMs),
    TCP_MAX_MESSAGE_SIZE: z.coerce
      .number()
      .int()
      .min(64)
      .max(64 * 1024)
      .default(TCP_DEFAULTS.maxMessageSize),
    TCP_MAX_LOGIN_LENGTH: z.coerce.number().int().min(64).max(4096).default(TCP_DEFAULTS.maxLoginLength),
    /** Device connections (MQTT, MQTT over WebSocket, raw TCP) before login, and login attempts (mqtt-broker/core/admission.ts). */
    PENDING_CONNECTIONS_PER_ADDRESS: z.coerce
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .default(ADMISSION_DEFAULTS.pendingPerAddress),
    PENDING_CONNECTIONS_MAX: z.coerce.number().int().min(1).max(1_000_000).default(ADMISSION_DEFAULTS.pendingMax),
    /** 0 = derived from the process's open-file limit. */
    DEVICE_CONNECTIONS_MAX: z.coerce.number().int().min(0).max(10_000_000).default(0),
    DEVICE_LOGIN_RATE: z.coerce.number().min(0.01).max(1_000_000).default(ADMISSION_DEFAULTS.loginRate),
    DEVICE_LOGIN_BURST: z.coerce.number().int().min(1).max(1_000_000).default(ADMISSION_DEFAULTS.loginBurst),
    MQTT_CONNECT_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(MQTT_DEFAULTS.connectTimeoutMs),
    HISTORY_RETENTION_DAYS: z.coerce.number().int().min(0).max(36_500).default(365),
    HISTORY_COMPRESS_AFTER_DAYS: z.coerce.number().int().min(0).max(36_500).default(7),
    HISTORY_CHUNK_HOURS: z.coerce
      .number()
      .int()
      .min(1)
      .max(24 * 365)
      .default(24),
    INGEST_BATCH_SIZE: z.coerce.number().int().min(1).max(100_000).default(5_000),
    /** Unset or blank: per database (composition/settings.ts ingestBatchDelayMsOf: 0 on PostgreSQL, 5 embedded). */
    INGEST_BATCH_DELAY_MS: z.preprocess(
      (v) => (typeof v === 'string' && v.trim() === '' ? undefined : v),
      z.coerce.number().int().min(0).max(10_000).optional(),
    ),
    INGEST_MAX_PENDING: z.coerce.number().int().min(1).max(10_000_000).default(100_000),
    INGEST_CONCURRENCY: z.coerce.number().int().min(1).max(16).default(1),
    LOGIN_BATCH_DELAY_MS: z.coerce.number().int().min(0).max(1_000).default(5),
    ALARM_WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(WEBHOOK.timeoutMs),
    ALARM_WEBHOOK_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(WEBHOOK.maxAttempts),
    ALARM_WEBHOOK_BACKOFF_MS: z.coerce.number().int().min(10).max(3_600_000).default(WEBHOOK.backoffMs),
    /** Webhook isolation (src/domain/alarms/notifier.ts): networks allowed besides public addresses, queue and breaker limits. */
    ALARM_WEBHOOK_ALLOW_NETWORKS: z
      .string()
      .default(WEBHOOK.allowNetworks)
      .superRefine((v, ctx) => {
        try {
          parseNetworks(v);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message });
        }
      }),
    ALARM_WEBHOOK_CONCURRENCY: z.coerce.number().int().min(1).max(1_000).default(WEBHOOK.concurrency),
    ALARM_WEBHOOK_PROJECT_CONCURRENCY: z.coerce.number().int().min(1).max(100).default(WEBHOOK.projectConcurrency),
    ALARM_WEBHOOK_MAX_PENDING: z.coerce.number().int().min(1).max(10_000_000).default(WEBHOOK.maxPending),
    ALARM_WEBHOOK_PROJECT_MAX_PENDING: z.coerce.number().int().min(1).max(1_000_000).default(WEBHOOK.projectMaxPending),
    ALARM_WEBHOOK_BREAKER_FAILURES: z.coerce.number().int().min(1).max(1_000).default(WEBHOOK.breakerFailures),
    ALARM_WEBHOOK_BREAKER_COOLDOWN_MS: z.coerce
      .number()
      .int()
      .min(1_000)
      .max(86_400_000)
      .default(WEBHOOK.breakerCooldownMs),
    // /readyz: how long the database may take to answer; SIGTERM: how long /readyz answers 503 before listeners close.
    READINESS_DB_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(2_000),
    SHUTDOWN_DRAIN_MS: z.coerce.number().int().min(0).max(300_000).default(0),
    /**
     * Cluster mode (docs/cluster.md): NATS server URLs, comma-separated; unset = one node, as always.
     * CLUSTER_NAME prefixes every subject, bucket and stream; NODE_ID names this node (default host-pid).
     */
    NATS_URL: optionalString.pipe(
      z
        .string()
        .refine(
          (v) => v.split(',').every((u) => /^(nats|tls):\/\/[^\s,]+$/.test(u.trim()) || /^[\w.-]+:\d+$/.test(u.trim())),
          'must be nats://host:port (tls://host:port for TLS; credentials as nats://user:password@host:port), or several separated by commas',
        )
        .optional(),
    ),
    CLUSTER_NAME: z
      .string()
      .trim()
      .regex(
        /^[A-Za-z0-9_-]{1,40}$/,
        'must be 1-40 letters, digits, "_" or "-" (it prefixes NATS subjects and buckets)',
      )
      .default('iot'),
    NODE_ID: optionalString.pipe(
      z
        .string()
        .regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 letters, digits, "_" or "-" (it is a NATS subject token)')
        .optional(),
    ),
    /** How long a node lives without a heartbeat and a lease without renewal (docs/cluster.md §3). */
    CLUSTER_LEASE_MS: z.coerce.number().int().min(2_000).max(15_000).default(8_000),
    /** The CA of the NATS servers' certificates: TLS to NATS is then required (docs/cluster.md §6). */
    NATS_TLS_CA_FILE: optionalString,
    /** Copies NATS keeps of each cluster bucket: 3 on a three-server NATS cluster (docs/cluster.md §6). */
    NATS_KV_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
    /**
     * Every HTTP answer is also encoded by zod against its schema and must come out the same as the compiled
     * serializer's, or the request fails (src/http/serializer.ts): for tests and debugging, ~5× the cost.
     */
    RESPONSE_CHECK: z
      .enum(['true', 'false', '1', '0'])
      .default('false')
      .transform((v) => v === 'true' || v === '1'),
    TRUST_PROXY: z
      .enum(['true', 'false', '1', '0'])
      .default('false')
      .transform((v) => v === 'true' || v === '1'),
  })
  .superRefine((c, ctx) => {
    if (c.NODE_ENV === 'production' && !c.JWT_SECRET) {
      ctx.addIssue({
        code: 'custom',
        path: ['JWT_SECRET'],
        message: 'is required when NODE_ENV=production (set a random string of 32+ characters)',
      });
    }
    tlsRefine(c, ctx);
    if (c.NATS_URL && !c.DATABASE_URL) {
      ctx.addIssue({
        code: 'custom',
        path: ['NATS_URL'],
        message:
          'cluster mode needs PostgreSQL: set DATABASE_URL (postgres://…) for every node, or unset NATS_URL to run one node on the embedded database',
      });
    }
    if (c.NATS_URL && !c.JWT_SECRET) {
      ctx.addIssue({
        code: 'custom',
        path: ['JWT_SECRET'],
        message:
          'is required with NATS_URL: every node of a cluster must sign and check tokens with the same secret (a random string of 32+ characters)',
      });
    }
  })
  .transform(withTlsPorts);

export type Config = Readonly<z.infer<typeof configSchema>>;

/** The TLS listener ports when only the files are given (docs/tls.md §3). */
export const TLS_DEFAULT_PORTS = { HTTPS_PORT: 8443, MQTTS_PORT: 8883, TCPS_PORT: 28802 } as const;
const TLS_PORTS = ['HTTPS_PORT', 'MQTTS_PORT', 'TCPS_PORT'] as const;

interface TlsSettings {
  TLS_CERT_FILE?: string | undefined;
  TLS_KEY_FILE?: string | undefined;
  HTTP_PORT: number | 'off';
  HTTPS_PORT?: number | 'off' | undefined;
  MQTTS_PORT?: number | 'off' | undefined;
  TCPS_PORT?: number | 'off' | undefined;
}

/** Both TLS files or neither; TLS ports only with them; the API served on HTTP or HTTPS. */
function tlsRefine(c: TlsSettings, ctx: z.RefinementCtx) {
  const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
  if (c.TLS_CERT_FILE && !c.TLS_KEY_FILE)
    issue('TLS_KEY_FILE', 'is required with TLS_CERT_FILE (the PEM private key of the certificate)');
  if (!c.TLS_CERT_FILE && c.TLS_KEY_FILE)
    issue('TLS_CERT_FILE', 'is required with TLS_KEY_FILE (the PEM certificate, optionally followed by its chain)');
  const tls = Boolean(c.TLS_CERT_FILE && c.TLS_KEY_FILE);
  if (!tls)
    for (const p of TLS_PORTS)
      if (c[p] !== undefined && c[p] !== 'off') issue(p, 'needs TLS_CERT_FILE and TLS_KEY_FILE (docs/tls.md)');
  if (c.HTTP_PORT === 'off' && (!tls || c.HTTPS_PORT === 'off')) {
    issue(
      'HTTP_PORT',
      'is off and HTTPS is not on: nothing would serve the API (set TLS_CERT_FILE and TLS_KEY_FILE for HTTPS_PORT, or give HTTP_PORT a port)',
    );
  }
}

/** TLS ports: their defaults when the files are given, `off` without them. */
function withTlsPorts<T extends TlsSettings>(c: T): T & Record<(typeof TLS_PORTS)[number], number | 'off'> {
  const tls = Boolean(c.TLS_CERT_FILE && c.TLS_KEY_FILE);
  const resolve = (p: (typeof TLS_PORTS)[number]) => (tls ? (c[p] ?? TLS_DEFAULT_PORTS[p]) : 'off');
  return {
    ...c,
    HTTPS_PORT: resolve('HTTPS_PORT'),
    MQTTS_PORT: resolve('MQTTS_PORT'),
    TCPS_PORT: resolve('TCPS_PORT'),
  };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses the environment once; the result is frozen and passed down, never re-read. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = configSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.') || '(env)'}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  return Object.freeze(parsed.data);
}

/** The configuration of an empty environment: every setting's default, read from the schema above. */
export function configDefaults(): Config {
  return loadConfig({});
}
