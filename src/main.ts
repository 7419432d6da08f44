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
import { ClusterUnavailable, connectCluster, defaultNodeId, type Cluster } from './cluster/cluster.ts';
import { createBroker } from '../mqtt-broker/mqtt/broker.ts';
import { attachWebSocket } from '../mqtt-broker/mqtt/websocket.ts';
import { createAdmission } from '../mqtt-broker/core/admission.ts';
import { createTcpListener } from '../mqtt-broker/tcp/listener.ts';
import { limitHttpConnections } from './http/connections.ts';
import { createLogger } from './logger.ts';
import { createMetrics } from './metrics/metrics.ts';
import { createReadiness } from './http/readiness.ts';
import { serviceSteps, startStep, startSteps, stopSteps } from './composition/lifecycle.ts';
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

/** Wraps an accepted socket in TLS (src/tls/servers.ts secureSocket). */
type Wrap = (socket: net.Socket) => net.Socket;

class StartupError extends Error {
  override name = 'StartupError';
}

async function start(config: Config) {
  // In cluster mode every line names its node (docs/cluster.md §6).
  const nodeId = config.NATS_URL ? (config.NODE_ID ?? defaultNodeId()) : undefined;
  const rootLogger = createLogger(config.LOG_LEVEL);
  const logger = nodeId ? rootLogger.child({ node: nodeId }) : rootLogger;
  // main's own lines; every component logs through its own child of `logger`.
  const log = logger.child({ component: 'main' });
  const jwt = resolveJwtSecret(config);
  if (jwt.source === 'generated')
    log.warn(
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
  // Prometheus metrics (docs/metrics.md), only with METRICS_TOKEN; `node` tells the nodes of a cluster apart.
  const metrics = config.METRICS_TOKEN
    ? createMetrics({ node: nodeId ?? config.NODE_ID ?? defaultNodeId() })
    : undefined;
  if (metrics && database.pool) metrics.watchDatabase(database.pool);
  // Cluster mode (docs/cluster.md): NATS is reached before anything starts; unreachable, the start stops here.
  let cluster: Cluster | undefined;
  if (config.NATS_URL && nodeId) {
    try {
      cluster = await connectCluster({
        servers: config.NATS_URL,
        name: config.CLUSTER_NAME,
        nodeId,
        leaseMs: config.CLUSTER_LEASE_MS,
        replicas: config.NATS_KV_REPLICAS,
        caFile: config.NATS_TLS_CA_FILE,
        logger: logger.child({ component: 'cluster' }),
      });
    } catch (err) {
      await database.close().catch(() => {});
      if (err instanceof ClusterUnavailable) throw new StartupError(err.message);
      throw err;
    }
    log.info({ cluster: config.CLUSTER_NAME, nodes: [...cluster.aliveNodes()] }, 'joined the cluster');
  }
  const services = createServices({
    db: database.db,
    repositories: createRepositories(database.db),
    logger,
    // Keys the hashes of view secrets and app secret_keys (passwords.ts): rotating JWT_SECRET invalidates them.
    serverSecret: jwt.secret,
    settings: settings.services,
    cluster,
    metrics,
  });
  metrics?.watchIngest(() => services.ingest.stats());
  // One ordered list of what starts and stops with the server (lifecycle.ts): the services first, then the
  // listeners and servers as they open. Stopped in reverse: nothing is accepted any more, then the services
  // flush what the listeners delivered; the store closes last.
  const steps = serviceSteps(services, { logger, historyPolicies: settings.historyPolicies });
  // The cluster stops after everything that uses it, just before the database.
  if (cluster)
    steps.unshift({
      name: 'cluster',
      start: () => services.clusterStart?.(),
      // This node's live-event interest goes first, so the others stop sending at once (docs/cluster.md §4).
      stop: async () => {
        await services.clusterBus?.close();
        await cluster.close();
      },
    });
  await startSteps(steps);
  const readiness = createReadiness({
    ping: database.ping,
    dbTimeoutMs: settings.readiness.dbTimeoutMs,
    ingest: () => services.ingest.stats(),
    awaitListeners: true,
    logger: logger.child({ component: 'readiness' }),
    ...(cluster ? { node: { id: cluster.nodeId, cluster: cluster.name, nats: () => cluster.status } } : {}),
  });
  const app = await buildApp({
    config,
    services,
    jwtSecret: jwt.secret,
    logger: logger.child({ component: 'http' }),
    readiness,
    ...(metrics ? { metrics } : {}),
  });

  const shutdown = async (signal: string) => {
    log.info({ signal }, 'shutting down');
    await stopSteps(steps, (err, step) => log.error({ err, step: step.name }, 'error while closing'));
    await database.close().catch((err) => log.error({ err }, 'error while closing the database'));
    log.info('stopped');
  };

  try {
    const httpLimits = settings.http;
    // A listener set to `off` does not listen at all (docs/tls.md §3); HTTPS then serves the API.
    const httpPort = config.HTTP_PORT;
    await startStep(steps, {
      name: 'http',
      start: async () => {
        if (httpPort !== 'off') {
          limitHttpConnections(app.server, httpLimits);
          await app.listen({ host: config.HOST, port: httpPort }).catch((err) => portInUse(err, 'HTTP_PORT', httpPort));
        } else await app.ready();
      },
      stop: () => app.close(),
    });
    // Stopped before presence and commands flush, so a disconnect is recorded.
    // One admission for MQTT, MQTT over WebSocket and raw TCP (mqtt-broker/core/admission.ts).
    const admission = createAdmission(settings.admission);
    log.info({ maxConnections: admission.maxConnections }, 'device connections allowed at once');
    // The broker and the TCP listener name their own component (`mqtt`, `tcp`) on this logger.
    const broker = await createBroker({ services, logger, ...settings.mqtt, admission });
    // MQTT and MQTT over TLS: one broker; their listeners stop accepting while it closes its connections.
    const mqttServers: net.Server[] = [];
    await startStep(steps, {
      name: 'mqtt',
      stop: async () => {
        const stopped = mqttServers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
        await broker.close();
        await Promise.all(stopped);
      },
    });
    // Raw TCP devices (device-protocol.md §6); stopped before what it feeds, like the broker.
    const tcp = createTcpListener({ services, logger, ...settings.tcp, admission });
    await startStep(steps, { name: 'tcp', stop: () => tcp.close() });
    /** Opens one MQTT (or, with `secure`, MQTTS) listener on the broker; closed with it. */
    const listenMqtt = async (scheme: 'mqtt' | 'mqtts', variable: string, wanted: number | 'off', secure?: Wrap) => {
      if (wanted === 'off') return;
      const label = scheme.toUpperCase();
      const server = net.createServer((socket) => broker.handleConnection(secure ? secure(socket) : socket));
      const { port } = await listen(server, wanted, config.HOST, (err) =>
        log.error({ err }, `${label} listener error`),
      ).catch((err) => portInUse(err, variable, wanted));
      mqttServers.push(server);
      log.info({ port }, `${label} listening at ${scheme}://${config.HOST}:${port}`);
    };
    /** Opens one raw TCP (or, with `secure`, TCPS) listener; closed with the TCP step. */
    const listenTcp = async (scheme: 'tcp' | 'tcps', variable: string, wanted: number | 'off', secure?: Wrap) => {
      if (wanted === 'off') return;
      const { port } = await tcp.listen(wanted, config.HOST, secure).catch((err) => portInUse(err, variable, wanted));
      log.info({ port }, `${scheme.toUpperCase()} listening at ${scheme}://${config.HOST}:${port}`);
    };
    await listenMqtt('mqtt', 'MQTT_PORT', config.MQTT_PORT);
    await listenTcp('tcp', 'TCP_PORT', config.TCP_PORT);
    const webSocketOptions = settings.webSocket;
    await startStep(steps, { name: 'websocket', stop: attachWebSocket(app.server, broker, webSocketOptions) });
    // TLS (docs/tls.md §2): the same broker, TCP listener, admission, HTTP limits and WebSocket as the
    // plaintext listeners; the certificate follows the files on disk (src/tls/reloader.ts).
    if (tlsFiles && tlsInitial) {
      const reloader = createTlsReloader({
        files: tlsFiles,
        initial: tlsInitial,
        intervalMs: settings.tlsReloadIntervalMs,
        logger: logger.child({ component: 'tls' }),
      });
      await startStep(steps, { name: 'tls reloader', stop: async () => reloader.close() });
      log.info(describeCertificate(tlsInitial), 'TLS certificate');
      const wrap = secureSocket(reloader);
      await listenMqtt('mqtts', 'MQTTS_PORT', config.MQTTS_PORT, wrap);
      await listenTcp('tcps', 'TCPS_PORT', config.TCPS_PORT, wrap);
      const httpsPort = config.HTTPS_PORT;
      if (httpsPort !== 'off') {
        const https = createHttpsServer(app, reloader, { handshakeTimeoutMs: config.HTTP_HEADERS_TIMEOUT_MS });
        limitHttpConnections(https.server, httpLimits);
        const { port } = await listen(https.server, httpsPort, config.HOST, (err) =>
          log.error({ err }, 'HTTPS listener error'),
        ).catch((err) => portInUse(err, 'HTTPS_PORT', httpsPort));
        await startStep(steps, { name: 'https', stop: () => https.close() });
        await startStep(steps, {
          name: 'secure websocket',
          stop: attachWebSocket(https.server, broker, webSocketOptions),
        });
        log.info(
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
      await startStep(steps, { name: 'control socket', stop: () => control.close() });
    }
    // Stopped first: open event streams end before any listener waits for its connections.
    await startStep(steps, { name: 'event streams', stop: async () => app.eventStreams.closeAll() });
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
      log.info({ signal, drainMs: config.SHUTDOWN_DRAIN_MS }, 'draining');
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
