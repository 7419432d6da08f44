import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import mqemitter from 'mqemitter';
import type { Logger } from 'pino';
import { createAdmission, track, type Admission, type Ticket, type TrackedStream } from '../core/admission.ts';
import { MAX_HELD_COMMANDS, MQTT_DEFAULTS } from '../core/defaults.ts';
import { deviceLogin } from '../core/device-login.ts';
import { attachDevice, HeldCommands, type DeviceConnection, type DeviceLink } from '../core/device-session.ts';
import { NO_METRICS, VIEW_KEY_LENGTH, type DeviceIdentity, type DevicePort, type LoginResult } from '../core/port.ts';
import type { UpstreamContext } from './handlers/index.ts';
import { DeviceTopicRouter, sharedFilters } from './device-router.ts';
import { createGatewayHub, type GatewayLink } from './gateway.ts';
import { createPublishing, type PublishingDevice } from './publish.ts';
import { createViewerRegistry } from './viewers.ts';
import {
  deviceTopic,
  GATEWAY_TOPICS,
  isCommandFilter,
  isDownstreamFilter,
  isGatewayDownstreamFilter,
  parseUpstream,
  relativeTopic,
  upstreamSink,
} from '../protocol/topics.ts';

export interface BrokerOptions {
  /** The server's services, through the device edge's port (core/port.ts). */
  services: DevicePort;
  logger: Pick<Logger, 'child'>;
  maxPacketSize?: number;
  /**
   * Messages per second per device for every project (tests); by default each project's own
   * `device_rate_limit` (falling back to MQTT_RATE_LIMIT). The burst is twice this.
   */
  rateLimit?: number;
  maxSubscriptions?: number;
  maxViewerSubscriptions?: number;
  maxViewersPerProject?: number;
  retryUnavailableMs?: number;
  authFailureDelayMs?: number;
  /**
   * Connections before login and login attempts, shared with the other device listeners
   * (admission.ts); default: one of the broker's own with the default limits.
   */
  admission?: Admission;
  /** CONNECT must arrive, and the login complete, within this time of the connection. */
  connectTimeoutMs?: number;
  /**
   * Bytes written to a connection that the server still holds (beyond what the network buffers took), past which
   * the peer is taken as not reading and its connection is closed (docs/device-protocol.md §2); by default four
   * packets of `maxPacketSize`. Checked when a write finds the stream above its high-water mark (16 KiB).
   */
  maxPendingOutputBytes?: number;
  /** How long a connection's buffer may stay above its high-water mark before it is closed (Aedes' drainTimeout). */
  drainTimeoutMs?: number;
  clock?: () => number;
}

export interface Broker {
  readonly aedes: Aedes;
  /**
   * Serves one MQTT connection (a TCP socket or a WebSocket stream) from `address` (by default the
   * socket's remote address).
   */
  handleConnection(stream: Duplex, address?: string): void;
  close(): Promise<void>;
}

/** A connection's filters before its first SUBSCRIBE (ClientState.filters), shared by all. */
const NO_FILTERS: readonly string[] = Object.freeze([]);

/** Publishes `payload` to one device on its own `topic` (QoS 1): the broker's publishTo. */
type PublishTo = (deviceId: string, topic: string, payload: Buffer) => Promise<void>;

/**
 * The broker's state of one device connection, from its login until it closes. It is also the context its
 * messages are handled in, and the link its session sends and closes through: one object with its methods on the
 * prototype. As closures and objects made for each connection (`send`, `close`, the context), they cost some
 * 0.3 KiB of heap a connection in bench:mqtt-connect.
 */
class ClientState implements PublishingDevice, UpstreamContext, DeviceLink {
  filters = NO_FILTERS;
  /** The device's session in the registry, from the 'client' event until the connection closes. */
  connection: DeviceConnection | undefined = undefined;
  /** Set for a gateway device (conn_type "3"): its sub-devices' traffic (device-protocol.md §8, gateway.ts). */
  gateway: GatewayLink | undefined = undefined;
  /**
   * Commands sent before the device subscribed to `command/send/…` on this connection (releaseCommands); made by
   * the first one, since most connections never hold one.
   */
  #held: HeldCommands<{ topic: string; payload: Buffer }> | undefined = undefined;
  #commandsReady = false;

  constructor(
    readonly client: Client,
    readonly identity: DeviceIdentity,
    /** Messages per second this device may send. */
    readonly rate: number,
    /**
     * deviceAuth.mark() when the login began: credentials revoked since then end the connection before it is
     * attached (a number, not the login's `revoked` closure: this state lives as long as the connection).
     */
    readonly mark: number,
    readonly services: DevicePort,
    readonly clock: () => number,
    private readonly publishTo: PublishTo,
  ) {}

  get context(): UpstreamContext {
    return this;
  }

  send(topic: string, payload: Buffer): Promise<void> {
    if (this.client.closed) return Promise.reject(new Error('session closed'));
    if (topic.startsWith('command/send/') && !this.#commandsReady)
      return (this.#held ??= new HeldCommands(MAX_HELD_COMMANDS, 'the device has not subscribed to commands')).hold({
        topic,
        payload,
      });
    return this.publishTo(this.identity.deviceId, topic, payload);
  }

  /** The device subscribed to its commands: the ones held, to go out now; later ones are not held. */
  releaseCommands(): { topic: string; payload: Buffer }[] {
    this.#commandsReady = true;
    const held = this.#held?.release() ?? [];
    this.#held = undefined;
    return held;
  }

  close(): void {
    this.client.close();
  }
}

/** A stream's errors are Aedes' to handle (or come after admission destroyed it): this only keeps one from being thrown. */
function ignore() {}

function authError(returnCode: 3 | 4 | 5, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

/**
 * The embedded MQTT broker (device-protocol.md §2–3): maps a device's relative topics to the domain
 * services and back. Each device's subscriptions are rewritten to `$d/<deviceId>/…`, so devices
 * share topic names but never see each other's traffic; upstream publishes are handled here and
 * then routed to `$up/<deviceId>/…`, which nobody can subscribe to.
 */
export async function createBroker(options: BrokerOptions): Promise<Broker> {
  const { services, clock = Date.now } = options;
  const maxPacketSize = options.maxPacketSize ?? MQTT_DEFAULTS.maxPacketSize;
  const maxSubscriptions = options.maxSubscriptions ?? MQTT_DEFAULTS.maxSubscriptions;
  const maxViewerSubscriptions = options.maxViewerSubscriptions ?? MQTT_DEFAULTS.maxViewerSubscriptions;
  const maxViewersPerProject = options.maxViewersPerProject ?? MQTT_DEFAULTS.maxViewersPerProject;
  const authFailureDelayMs = options.authFailureDelayMs ?? MQTT_DEFAULTS.authFailureDelayMs;
  const log = options.logger.child({ component: 'mqtt' });
  const states = new WeakMap<Client, ClientState>();
  // What this transport counts (docs/metrics.md): made once, each call one increment.
  const metrics = services.metrics ?? NO_METRICS;
  const counts = metrics.transport('mqtt');
  /** Viewers counted in iot_viewer_connections (a viewer may disconnect before it was ever registered). */
  const countedViewers = new WeakSet<Client>();

  // maximumPacketSize is enforced by Aedes 2 for every protocol version: v5 clients get a 0x95
  // DISCONNECT, 3.1.1 clients are dropped, as soon as the fixed header declares the length.
  const connectTimeoutMs = options.connectTimeoutMs ?? MQTT_DEFAULTS.connectTimeoutMs;
  const connections = options.admission ?? createAdmission();
  /** The admission ticket of each connection's stream, until it closes. */
  const tickets = new WeakMap<object, Ticket>();
  /** Open connections, so close() can end the ones that have not logged in (Aedes ends the others). */
  const streams = new Set<Duplex>();
  const forget = (stream: TrackedStream) => streams.delete(stream as Duplex);
  /** See BrokerOptions.maxPendingOutputBytes. */
  const maxPendingOutput = options.maxPendingOutputBytes ?? 4 * maxPacketSize;
  const aedes = await Aedes.createBroker({
    maximumPacketSize: maxPacketSize,
    drainTimeout: options.drainTimeoutMs ?? MQTT_DEFAULTS.drainTimeoutMs,
    connectTimeout: connectTimeoutMs,
    // No limit on the messages Aedes routes at once. Its default (100) makes one queue for every connection: a
    // delivery waits until its connection drains, so a hundred deliveries to peers that stopped reading held
    // every other tenant's messages (answers, commands, application feeds) for up to the drain timeout, and the
    // queue then emptied itself recursively, deep enough to overflow the stack. Each connection's own reading
    // still waits for its messages, and what it may leave unread is bounded (`maxPendingOutput`). (Aedes also
    // passes twice this to each connection's setMaxListeners: 0 is no limit, and with a drain timeout Aedes holds
    // one drain listener per connection.)
    concurrency: 0,
    // Each device's subscriptions in a map by device, not in the shared topic tree (device-router.ts). The
    // same `concurrency` and `matchEmptyLevels` as Aedes gives the tree it would make itself.
    mq: new DeviceTopicRouter(mqemitter({ concurrency: 0, matchEmptyLevels: true })),
    // Read by the patched lib/write.js (patches/aedes+2.0.0-beta.1.patch): a connection that leaves more than
    // this unread is closed with ERR_PEER_NOT_READING (docs/device-protocol.md §2).
    maxPendingOutput,
    // Read by the patched lib/handlers/unsubscribe.js (the same patch).
    rewriteUnsubscribe: (client: Client, filters: string[]) => rewriteUnsubscribe(client, filters),
  } as Parameters<typeof Aedes.createBroker>[0]);

  // Application subscriptions (device-protocol.md §9): read-only clients of a project's view key.
  const viewers = createViewerRegistry({ aedes, services, log, maxViewerSubscriptions, maxViewersPerProject });

  // Gateways and their sub-devices (device-protocol.md §8).
  const gateways = createGatewayHub({ services, log });
  /** A device may subscribe to the downstream device topics, and a gateway also to the gateway ones. */
  const mayFilter = (state: ClientState, filter: string) =>
    isDownstreamFilter(filter) || (state.identity.connType === '3' && isGatewayDownstreamFilter(filter));

  function publishTo(deviceId: string, topic: string, payload: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      aedes.publish(
        { cmd: 'publish', topic: deviceTopic(deviceId, topic), payload, qos: 1, retain: false, dup: false },
        (err) => {
          if (err) return reject(err);
          // Counted once it went out, not when asked.
          counts.sent();
          resolve();
        },
      );
    });
  }

  // What becomes of a device's message once authorized: rate, handler, answer, acknowledgement (publish.ts).
  const publishing = createPublishing({
    limiter: services.rateLimiter,
    log,
    counts,
    retryUnavailableMs: options.retryUnavailableMs ?? MQTT_DEFAULTS.retryUnavailableMs,
    clock,
    publishTo,
  });

  /**
   * UNSUBSCRIBE has no authorization hook, and the device's filters were stored rewritten, so its filters are
   * rewritten the same way before Aedes handles the packet: the patched handler of the pinned Aedes 2.0.0-beta.1
   * calls this (patches/aedes+2.0.0-beta.1.patch; the unsubscribe tests guard it). A listener on each connection's
   * parser did it before, at ~0.15 KiB of heap a connection.
   */
  function rewriteUnsubscribe(client: Client, filters: string[]): string[] {
    const state = states.get(client);
    if (state) {
      if (state.filters.length > 0) {
        const gone = new Set(filters);
        state.filters = state.filters.filter((f) => !gone.has(f));
      }
      // Every filter, granted or not: a device cannot name a stored key (`$d/<id>/…`) itself.
      return filters.map((f) => deviceTopic(state.identity.deviceId, f));
    }
    // A viewer's filters were stored rewritten into its project's namespace too.
    return viewers.has(client) ? viewers.unsubscribe(client, filters) : filters;
  }

  /**
   * The id the broker gives each connection: a random prefix per broker and a count (8 random bytes per
   * connection were a synchronous call into the system's random source at every CONNECT, ~2% of a connect's
   * CPU in a storm). Unique among this broker's connections, which is all Aedes needs; it is not a secret.
   */
  const clientIdPrefix = randomBytes(6).toString('hex');
  let clientIds = 0;
  aedes.preConnect = (_client, packet, callback) => {
    // SDKs send chip ids, IMEIs or fixed text as client id, so two devices may share one: the
    // broker gives every connection its own id, and "one session per device" is the registry's
    // job (sessions.attach). Wills and persistent sessions are not part of the device protocol.
    packet.clientId = `d${clientIdPrefix}${(++clientIds).toString(36)}`;
    packet.clean = true;
    delete packet.will;
    if (packet.properties) delete packet.properties.sessionExpiryInterval;
    callback(null, true);
  };

  aedes.authenticate = (client, username, password, done) => {
    const ticket = tickets.get(client.conn);
    // A logged-in connection is no longer pending: never closed to make room (admission.ts).
    const callback: typeof done = (err, ok) => {
      if (ok) ticket?.admit();
      done(err, ok);
    };
    /** `result`: how a device login ended (docs/metrics.md); a viewer's is not a device login. */
    const refuse = (returnCode: 4 | 5, message: string, result?: LoginResult) => {
      if (result) counts.login(result);
      const t = setTimeout(() => callback(authError(returnCode, message), false), authFailureDelayMs);
      t.unref();
    };
    // Counted per client address before any query or hash.
    if (ticket && !connections.tryLogin(ticket.address)) return refuse(4, 'too many login attempts', 'rate_limited');
    const token = username ?? '';
    const projectKey = password?.toString('utf8') ?? '';
    if (token.length === VIEW_KEY_LENGTH) {
      viewers.login(client, token, projectKey).then(
        (refused) => (refused ? refuse(refused.returnCode, refused.message) : callback(null, true)),
        (err: unknown) => {
          log.error({ err }, 'view key authentication failed');
          callback(authError(3, 'server unavailable'), false);
        },
      );
      return;
    }
    deviceLogin(services, projectKey, token, options.rateLimit)
      .then((login) => {
        if (!login.ok)
          return login.reason === 'device disabled'
            ? refuse(5, 'device disabled', 'refused')
            : refuse(4, 'bad user name or password', 'bad_credentials');
        const { identity, rate, mark } = login;
        // Counted `ok` when the session is up (the 'client' event below), after the last revocation check.
        states.set(client, new ClientState(client, identity, rate, mark, services, clock, publishTo));
        callback(null, true);
      })
      .catch((err: unknown) => {
        log.error({ err }, 'device authentication failed');
        counts.login('refused');
        callback(authError(3, 'server unavailable'), false);
      });
  };

  aedes.authorizeSubscribe = (client, sub, callback) => {
    if (viewers.has(client)) {
      const topic = viewers.subscribe(client, sub.topic);
      // QoS 0 only (device-protocol.md §9).
      return callback(null, topic === undefined ? null : { ...sub, topic, qos: 0 });
    }
    const state = states.get(client);
    if (!state || !mayFilter(state, sub.topic)) return callback(null, null);
    if (!state.filters.includes(sub.topic)) {
      if (state.filters.length >= maxSubscriptions) {
        log.debug(
          { deviceId: state.identity.deviceId, filters: state.filters.length },
          'subscription refused: too many filters',
        );
        return callback(null, null);
      }
      // concat allocates the exact size (a spread grows the array by push: ~0.15 KiB for one filter).
      state.filters = state.filters.concat(sharedFilters.intern(sub.topic));
    }
    callback(null, { ...sub, topic: deviceTopic(state.identity.deviceId, sub.topic) });
  };

  aedes.authorizeForward = (client, packet) => {
    if (viewers.has(client)) {
      const topic = viewers.forward(client, packet.topic);
      return topic === undefined ? null : ({ ...packet, topic, qos: 0 } as typeof packet);
    }
    const state = states.get(client);
    const topic = state && relativeTopic(state.identity.deviceId, packet.topic);
    if (topic === undefined) return null;
    return { ...packet, topic } as typeof packet;
  };

  aedes.authorizePublish = (client, packet, callback) => {
    if (client && viewers.has(client)) {
      // Subscribers are read-only: a publish ends the connection and goes nowhere.
      viewers.published(client);
      counts.dropped('unauthorized');
      return callback(new Error('not authorized'));
    }
    const state = client ? states.get(client) : undefined;
    if (!client || !state) {
      counts.dropped('unauthorized');
      return callback(new Error('not authorized'));
    }
    counts.received();
    const topic = packet.topic;
    // Whatever happens below, the message goes nowhere but the sink: never to another client.
    packet.topic = upstreamSink(state.identity.deviceId, topic);
    packet.retain = false;
    const up = parseUpstream(topic);
    if (!up) {
      log.debug({ deviceId: state.identity.deviceId, topic }, 'dropped a publish on an unknown topic');
      counts.dropped('invalid');
      return callback(null);
    }
    publishing.publish(client, state, topic, up, packet, callback);
  };

  // 'client' comes when the client is registered, before its CONNACK is written: the device is
  // online (and reachable) by the time it knows it is connected.
  aedes.on('client', (client) => {
    if (viewers.connected(client)) {
      countedViewers.add(client);
      metrics.viewerConnected();
      return;
    }
    const state = states.get(client);
    if (!state) return;
    const { identity } = state;
    if (services.deviceAuth.revokedSince(identity, state.mark)) {
      log.info(
        { deviceId: identity.deviceId },
        'closing a device connection whose credentials were revoked while it logged in',
      );
      counts.login('refused');
      return client.close();
    }
    counts.login('ok');
    state.connection = attachDevice(services, { identity, transport: 'mqtt', link: state, log, metrics: counts });
    if (identity.connType === '3') state.gateway = gateways.open(identity, state.connection.session);
    log.info({ deviceId: identity.deviceId, clientId: client.id }, 'device connected');
  });

  aedes.on('clientDisconnect', (client) => {
    if (viewers.disconnected(client)) {
      if (countedViewers.delete(client)) metrics.viewerDisconnected();
      return;
    }
    const state = states.get(client);
    if (!state?.connection) return;
    const { connection, identity } = state;
    state.connection = undefined;
    // The gateway's sub-devices go offline with its connection.
    state.gateway?.end('gateway disconnected');
    connection.end();
    log.info({ deviceId: identity.deviceId }, 'device disconnected');
  });

  aedes.on('subscribe', (subs, client) => {
    const state = states.get(client);
    if (!state?.connection) return;
    const { identity } = state;
    if (state.gateway && subs.some((s) => s.qos < 128 && s.topic === GATEWAY_TOPICS.commandSend))
      state.gateway.commandsReady();
    // The event carries the filters as the device sent them, with the granted QoS (128 = refused).
    const wantsCommands = subs.some((s) => s.qos < 128 && isCommandFilter(s.topic));
    if (!wantsCommands) return;
    for (const { topic, payload } of state.releaseCommands()) {
      publishTo(identity.deviceId, topic, payload).catch((err: unknown) =>
        log.warn({ deviceId: identity.deviceId, err }, 'held command could not be published'),
      );
    }
    services.commands
      .deliverQueued(identity)
      .catch((err: unknown) => log.error({ deviceId: identity.deviceId, err }, 'queued command delivery failed'));
  });

  /** Connections closed for not reading what is sent to them, counted and logged once each. */
  const notReadingClosed = new WeakSet<Client>();
  aedes.on('clientError', (client, err) => {
    // Closed for not reading: over maxPendingOutput (the patched write), or not drained within Aedes'
    // drainTimeout. The write that failed reports the error again through its own callback: counted once.
    if ((err as NodeJS.ErrnoException).code === 'ERR_PEER_NOT_READING' || err.message === 'drain timeout') {
      if (notReadingClosed.has(client)) return;
      notReadingClosed.add(client);
      counts.dropped('backpressure');
      return log.warn(
        { deviceId: states.get(client)?.identity.deviceId, viewer: viewers.has(client) || undefined, err },
        'closed a connection that does not read what is sent to it',
      );
    }
    log.debug({ deviceId: states.get(client)?.identity.deviceId, err }, 'client error');
  });
  aedes.on('connectionError', (_client, err) => {
    log.debug({ err }, 'connection error');
  });

  return {
    aedes,
    handleConnection(stream, address = (stream as Partial<Socket>).remoteAddress) {
      stream.on('error', ignore);
      // Before login a connection is counted for its address and has connectTimeoutMs to log in;
      // it may be closed to make room for newer ones, silently (admission.ts).
      const ticket = track(connections, stream, {
        address,
        deadlineMs: connectTimeoutMs,
        onClose: forget,
      });
      if (!ticket) return;
      tickets.set(stream, ticket);
      streams.add(stream);
      aedes.handle(stream);
    },
    close: () => {
      for (const stream of streams) if (!tickets.get(stream)?.admitted) stream.destroy();
      viewers.close();
      gateways.close();
      return new Promise<void>((resolve) => aedes.close(() => resolve()));
    },
  };
}
