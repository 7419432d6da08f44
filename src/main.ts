import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
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
import { serviceSteps, startSteps, stopSteps } from './composition/lifecycle.ts';
import { createRepositories } from './composition/repositories.ts';
import { createServices } from './composition/services.ts';
import { settingsFromConfig } from './composition/settings.ts';
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
    database = await openDatabase(config, logger.child({ component: 'db' }));
  } catch (err) {
    if (err instanceof DataDirLocked) {
      throw new StartupError(
        `${err.message} (${path.resolve(config.DATA_DIR)}): stop it, or give this server another DATA_DIR.`,
      );
    }
    if (err instanceof DatabaseUnavailable) throw new StartupError(err.message);
    throw err;
  }
  const settings = settingsFromConfig(config, database.driver);
  const services = createServices({
    db: database.db,
    repositories: createRepositories(database.db),
    logger,
    // Keys the hashes of view secrets and app secret_keys (passwords.ts): rotating JWT_SECRET invalidates them.
    serverSecret: jwt.secret,
    settings: settings.services,
  });
  const steps = serviceSteps(services, { logger, historyPolicies: settings.historyPolicies });
  await startSteps(steps);
  const readiness = createReadiness({
    ping: database.ping,
    dbTimeoutMs: settings.readiness.dbTimeoutMs,
    ingest: () => services.ingest.stats(),
    awaitListeners: true,
    logger: logger.child({ component: 'readiness' }),
  });
  const app = await buildApp({
    config,
    services,
    jwtSecret: jwt.secret,
    logger: logger.child({ component: 'http' }),
    readiness,
  });

  // The listeners and servers opened below, closed in reverse order before the services stop
  // (lifecycle.ts): nothing they delivered is lost, and the store closes last.
  const closers: Array<() => Promise<void>> = [];
  const shutdown = async (signal: string) => {
    logger.info({ signal }, 'shutting down');
    // Stop accepting work first, then flush the services, and close the store last.
    for (const close of closers.reverse()) await close().catch((err) => logger.error({ err }, 'error while closing'));
    await stopSteps(steps, (err, step) => logger.error({ err, step: step.name }, 'error while closing'));
    await database.close().catch((err) => logger.error({ err }, 'error while closing the database'));
    logger.info('stopped');
  };

  try {
    const httpLimits = settings.http;
    // A listener set to `off` does not listen at all (docs/tls.md §3); HTTPS then serves the API.
    const httpPort = config.HTTP_PORT;
    if (httpPort !== 'off') {
      limitHttpConnections(app.server, httpLimits);
      await app.listen({ host: config.HOST, port: httpPort }).catch((err) => portInUse(err, 'HTTP_PORT', httpPort));
    } else await app.ready();
    closers.push(() => app.close());
    // Closed before presence and commands flush (closers run in reverse), so a disconnect is recorded.
    // One admission for MQTT, MQTT over WebSocket and raw TCP (mqtt-broker/core/admission.ts).
    const admission = createAdmission(settings.admission);
    logger.info({ maxConnections: admission.maxConnections }, 'device connections allowed at once');
    // The broker and the TCP listener name their own component (`mqtt`, `tcp`) on this logger.
    const broker = await createBroker({ services, logger, ...settings.mqtt, admission });
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
    const tcp = createTcpListener({ services, logger, ...settings.tcp, admission });
    closers.push(() => tcp.close());
    const tcpPort = config.TCP_PORT;
    if (tcpPort !== 'off') {
      const tcpAddress = await tcp.listen(tcpPort, config.HOST).catch((err) => portInUse(err, 'TCP_PORT', tcpPort));
      logger.info({ port: tcpAddress.port }, `TCP listening at tcp://${config.HOST}:${tcpAddress.port}`);
    }
    const webSocketOptions = settings.webSocket;
    closers.push(attachWebSocket(app.server, broker, webSocketOptions));
    // TLS (docs/tls.md §2): the same broker, TCP listener, admission, HTTP limits and WebSocket as the
    // plaintext listeners; the certificate follows the files on disk (src/tls/reloader.ts).
    if (tlsFiles && tlsInitial) {
      const reloader = createTlsReloader({
        files: tlsFiles,
        initial: tlsInitial,
        intervalMs: settings.tlsReloadIntervalMs,
        logger: logger.child({ component: 'tls' }),
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
        logger: logger.child({ component: 'control' }),
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
