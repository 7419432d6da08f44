import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { buildApp } from './app.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { startControlServer } from './control/control-socket.ts';
import { DataDirLocked } from './db/data-dir-lock.ts';
import { openDatabase } from './db/open.ts';
import { DatabaseUnavailable } from './db/unreachable.ts';
import { resolveJwtSecret } from './lib/jwt-secret.ts';
import { createBroker } from '../mqtt-broker/mqtt/broker.ts';
import { attachWebSocket } from '../mqtt-broker/mqtt/websocket.ts';
import { createAdmission } from '../mqtt-broker/core/admission.ts';
import { createTcpListener } from '../mqtt-broker/tcp/listener.ts';
import { limitHttpConnections } from './http/connections.ts';
import { createLogger } from './logger.ts';
import { createReadiness } from './http/readiness.ts';
import { createServices } from './composition/services.ts';
import { readTlsCredentials } from './tls/credentials.ts';
import { createTlsReloader, describeCertificate } from './tls/reloader.ts';
import { createHttpsServer, listen, secureSocket } from './tls/servers.ts';

/** Turns "address in use" into the variable the operator should change. */
function portInUse(err: unknown, variable: string, port: number): never {
  if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
    throw new StartupError(
      `Port ${port} is already in use: set ${variable} to a free port (or stop the other process).`,
    );
  }
  throw err;
}

class StartupError extends Error {
  override name = 'StartupError';
}

async function start(config: Config) {
  const logger = createLogger(config.LOG_LEVEL);
  const jwt = resolveJwtSecret(config);
  if (jwt.source === 'generated')
    logger.warn(
      { file: path.join(config.DATA_DIR, 'jwt-secret') },
      'JWT_SECRET not set: generated one and stored it in DATA_DIR',
    );
  // Certificate and key are checked before anything opens: a problem stops the start with its message (docs/tls.md §1).
  const tlsFiles =
    config.TLS_CERT_FILE && config.TLS_KEY_FILE
      ? { certFile: config.TLS_CERT_FILE, keyFile: config.TLS_KEY_FILE }
      : undefined;
  const tlsInitial = tlsFiles && readTlsCredentials(tlsFiles);

  let database;
  try {
    database = await openDatabase(config, logger);
  } catch (err) {
    if (err instanceof DataDirLocked) {
      throw new StartupError(
        `${err.message} (${path.resolve(config.DATA_DIR)}): stop it, or give this server another DATA_DIR.`,
      );
    }
    if (err instanceof DatabaseUnavailable) throw new StartupError(err.message);
    throw err;
  }
  const services = createServices({
    db: database.db,
    logger,
    // Keys the hashes of view secrets and app secret_keys (passwords.ts): rotating JWT_SECRET invalidates them.
    serverSecret: jwt.secret,
    settings: {
      deviceRateLimit: config.MQTT_RATE_LIMIT,
      deviceRateLimitMax: config.DEVICE_RATE_LIMIT_MAX,
      projectMessageRate: config.PROJECT_MESSAGE_RATE,
      historyRetentionDays: config.HISTORY_RETENTION_DAYS,
      historyCompressAfterDays: config.HISTORY_COMPRESS_AFTER_DAYS,
      historyChunkHours: config.HISTORY_CHUNK_HOURS,
      ingestBatchSize: config.INGEST_BATCH_SIZE,
      ingestBatchDelayMs: config.INGEST_BATCH_DELAY_MS,
      ingestMaxPending: config.INGEST_MAX_PENDING,
      // PGlite is one connection: parallel batches would only queue behind each other.
      ingestConcurrency: database.driver === 'postgres' ? config.INGEST_CONCURRENCY : 1,
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
    },
  });
  await services.presence.resetOnline();
  services.presence.start();
  services.commands.start();
  logger.info({ history: await services.historyStore.detect() }, 'attribute history store');
  const policies = await services.historyStore.applyTimescalePolicies({
    chunkHours: config.HISTORY_CHUNK_HOURS,
    compressAfterDays: config.HISTORY_COMPRESS_AFTER_DAYS,
    retentionDays: config.HISTORY_RETENTION_DAYS,
  });
  if (policies.mode === 'timescale' && !policies.policies) {
    logger.warn(
      { license: policies.license },
      "TimescaleDB without the community license: no compression; history retention is the server's own job",
    );
  }
  services.retention.start();
  await services.currentCache.recover();
  services.currentCache.start();
  // Active alarms and the timers of connection and silence rules, rebuilt before devices connect.
  await services.alarms.start();
  const readiness = createReadiness({
    ping: () => database.db.execute(sql`select 1`),
    dbTimeoutMs: config.READINESS_DB_TIMEOUT_MS,
    ingest: () => services.ingest.stats(),
    awaitListeners: true,
    logger,
  });
  const app = await buildApp({ config, services, jwtSecret: jwt.secret, logger, readiness });

  // Closed in reverse order: listeners first, then what they feed (pending presence) is flushed.
  // The ingest pipeline flushes after the listeners stop feeding it: nothing acknowledged is lost.
  const closers: Array<() => Promise<void>> = [
    // Last to stop of these: evaluations of what the listeners delivered, and running webhook deliveries.
    () => services.alarms.stop(),
    () => services.presence.stop(),
    () => services.commands.stop(),
    () => services.retention.stop(),
    () => services.currentCache.stop(),
    () => services.ingest.stop(),
    // Data-stream messages (and the attribute reports of mapped JSON streams) are written before ingest stops.
    () => services.dataStreams.stop(),
  ];
  const shutdown = async (signal: string) => {
    logger.info({ signal }, 'shutting down');
    // Stop accepting work first, then flush and close the store last.
    for (const close of closers.reverse()) await close().catch((err) => logger.error({ err }, 'error while closing'));
    await database.close().catch((err) => logger.error({ err }, 'error while closing the database'));
    logger.info('stopped');
  };

  try {
    const httpLimits = {
      perAddress: config.HTTP_CONNECTIONS_PER_ADDRESS,
      trustProxy: config.TRUST_PROXY,
      headersTimeoutMs: config.HTTP_HEADERS_TIMEOUT_MS,
    };
    // A listener set to `off` does not listen at all (docs/tls.md §3); HTTPS then serves the API.
    const httpPort = config.HTTP_PORT;
    if (httpPort !== 'off') {
      limitHttpConnections(app.server, httpLimits);
      await app.listen({ host: config.HOST, port: httpPort }).catch((err) => portInUse(err, 'HTTP_PORT', httpPort));
    } else await app.ready();
    closers.push(() => app.close());
    // Closed before presence and commands flush (closers run in reverse), so a disconnect is recorded.
    // One admission for MQTT, MQTT over WebSocket and raw TCP (mqtt-broker/core/admission.ts).
    const admission = createAdmission({
      pendingPerAddress: config.PENDING_CONNECTIONS_PER_ADDRESS,
      pendingMax: config.PENDING_CONNECTIONS_MAX,
      maxConnections: config.DEVICE_CONNECTIONS_MAX,
      loginRate: config.DEVICE_LOGIN_RATE,
      loginBurst: config.DEVICE_LOGIN_BURST,
    });
    logger.info({ maxConnections: admission.maxConnections }, 'device connections allowed at once');
    const broker = await createBroker({
      services,
      logger,
      maxPacketSize: config.MQTT_MAX_PACKET_SIZE,
      maxSubscriptions: config.MQTT_MAX_SUBSCRIPTIONS,
      maxViewersPerProject: config.MQTT_MAX_VIEWERS_PER_PROJECT,
      admission,
      connectTimeoutMs: config.MQTT_CONNECT_TIMEOUT_MS,
    });
    // MQTT and MQTT over TLS: one broker; their listeners stop accepting while it closes its connections.
    const mqttServers: net.Server[] = [];
    closers.push(async () => {
      const stopped = mqttServers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
      await broker.close();
      await Promise.all(stopped);
    });
    const mqttPort = config.MQTT_PORT;
    if (mqttPort !== 'off') {
      const mqttServer = net.createServer((socket) => broker.handleConnection(socket));
      const { port } = await listen(mqttServer, mqttPort, config.HOST, (err) =>
        logger.error({ err }, 'MQTT listener error'),
      ).catch((err) => portInUse(err, 'MQTT_PORT', mqttPort));
      mqttServers.push(mqttServer);
      logger.info({ port }, `MQTT listening at mqtt://${config.HOST}:${port}`);
    }
    // Raw TCP devices (device-protocol.md §6); closed before what it feeds, like the broker.
    const tcp = createTcpListener({
      services,
      logger,
      loginTimeoutMs: config.TCP_LOGIN_TIMEOUT_MS,
      idleTimeoutMs: config.TCP_IDLE_TIMEOUT_MS,
      frameGapMs: config.TCP_FRAME_GAP_MS,
      maxMessageSize: config.TCP_MAX_MESSAGE_SIZE,
      maxLoginLength: config.TCP_MAX_LOGIN_LENGTH,
      admission,
    });
    closers.push(() => tcp.close());
    const tcpPort = config.TCP_PORT;
    if (tcpPort !== 'off') {
      const tcpAddress = await tcp.listen(tcpPort, config.HOST).catch((err) => portInUse(err, 'TCP_PORT', tcpPort));
      logger.info({ port: tcpAddress.port }, `TCP listening at tcp://${config.HOST}:${tcpAddress.port}`);
    }
    // A WebSocket message carries one MQTT packet (or a few): bounded like them.
    const webSocketOptions = { maxPayload: config.MQTT_MAX_PACKET_SIZE * 2, trustProxy: config.TRUST_PROXY };
    closers.push(attachWebSocket(app.server, broker, webSocketOptions));
    // TLS (docs/tls.md §2): the same broker, TCP listener, admission, HTTP limits and WebSocket as the
    // plaintext listeners; the certificate follows the files on disk (src/tls/reloader.ts).
    if (tlsFiles && tlsInitial) {
      const reloader = createTlsReloader({
        files: tlsFiles,
        initial: tlsInitial,
        intervalMs: config.TLS_RELOAD_INTERVAL_MS,
        logger,
      });
      closers.push(async () => reloader.close());
      logger.info(describeCertificate(tlsInitial), 'TLS certificate');
      const wrap = secureSocket(reloader);
      const { MQTTS_PORT: mqttsPort, TCPS_PORT: tcpsPort, HTTPS_PORT: httpsPort } = config;
      if (mqttsPort !== 'off') {
        const mqttsServer = net.createServer((socket) => broker.handleConnection(wrap(socket)));
        const { port } = await listen(mqttsServer, mqttsPort, config.HOST, (err) =>
          logger.error({ err }, 'MQTTS listener error'),
        ).catch((err) => portInUse(err, 'MQTTS_PORT', mqttsPort));
        mqttServers.push(mqttsServer);
        logger.info({ port }, `MQTTS listening at mqtts://${config.HOST}:${port}`);
      }
      if (tcpsPort !== 'off') {
        const { port } = await tcp
          .listen(tcpsPort, config.HOST, wrap)
          .catch((err) => portInUse(err, 'TCPS_PORT', tcpsPort));
        logger.info({ port }, `TCPS listening at tcps://${config.HOST}:${port}`);
      }
      if (httpsPort !== 'off') {
        const https = createHttpsServer(app, reloader, { handshakeTimeoutMs: config.HTTP_HEADERS_TIMEOUT_MS });
        limitHttpConnections(https.server, httpLimits);
        const { port } = await listen(https.server, httpsPort, config.HOST, (err) =>
          logger.error({ err }, 'HTTPS listener error'),
        ).catch((err) => portInUse(err, 'HTTPS_PORT', httpsPort));
        closers.push(() => https.close());
        closers.push(attachWebSocket(https.server, broker, webSocketOptions));
        logger.info(
          { port },
          `HTTPS listening at https://${config.HOST}:${port} (MQTT over WebSocket: wss://${config.HOST}:${port}/mqtt)`,
        );
      }
    }
    if (database.driver === 'pglite') {
      const control = await startControlServer({
        socketPath: path.join(config.DATA_DIR, 'control.sock'),
        services,
        logger,
      });
      closers.push(() => control.close());
    }
    // Run first (closers run in reverse): open event streams end before any listener waits for its connections.
    closers.push(async () => app.eventStreams.closeAll());
    readiness.listening();
  } catch (err) {
    await shutdown('startup-failure');
    throw err;
  }

  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      // Not ready from now on; listeners stay open for SHUTDOWN_DRAIN_MS so load balancers move away first.
      readiness.drain();
      logger.info({ signal, drainMs: config.SHUTDOWN_DRAIN_MS }, 'draining');
      sleep(config.SHUTDOWN_DRAIN_MS)
        .then(() => shutdown(signal))
        .then(
          () => process.exit(0),
          () => process.exit(1),
        );
    });
  }
}

try {
  await start(loadConfig());
} catch (err) {
  if (err instanceof ConfigError || err instanceof StartupError) {
    console.error(err.message);
  } else {
    console.error('Failed to start:', err);
  }
  process.exit(1);
}
