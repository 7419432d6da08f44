import net, { type AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { createAdmission, track, type Admission, type Ticket } from '../core/admission.ts';
import { TCP_DEFAULTS } from '../core/defaults.ts';
import { attachDevice, type DeviceConnection } from '../core/device-session.ts';
import { admitMessage } from '../core/message-rate.ts';
import { NO_METRICS, type DeviceIdentity, type DevicePort, type DropReason, type TcpProfile } from '../core/port.ts';
import { createGapFramer, createJsonFramer, type Framer } from './framing.ts';
import { createLogin } from './login.ts';

/** Bytes of a message that cost one token of the rate limit. */
const COST_UNIT = 4096;

export interface TcpListenerOptions {
  /** The server's services, through the device edge's port (core/port.ts). */
  services: Pick<
    DevicePort,
    'rateLimiter' | 'deviceAuth' | 'sessions' | 'presence' | 'dataStreams' | 'projectSettings' | 'metrics'
  >;
  logger: Pick<Logger, 'child'>;
  /**
   * Messages per second a link may send on average (bursts of twice that; a message costs one per
   * started 4 KiB). Default: the project's device rate limit, as over MQTT.
   */
  loginTimeoutMs?: number;
  idleTimeoutMs?: number;
  frameGapMs?: number;
  maxMessageSize?: number;
  maxLoginLength?: number;
  rateLimit?: number;
  authFailureDelayMs?: number;
  jsonStallMs?: number;
  keepAliveMs?: number;
  maxInFlight?: number;
  maxWriteBuffer?: number;
  /**
   * Connections before login and login attempts, shared with the MQTT broker (admission.ts): past a
   * limit the oldest pending connection of the address is closed. Default: the listener's own.
   */
  admission?: Admission;
  clock?: () => number;
}

export interface TcpStats {
  /** Open sockets, logged in or not. */
  connections: number;
  /** Open sockets with a logged-in device. */
  devices: number;
  logins: number;
  loginFailures: number;
  loginTimeouts: number;
  /** Connections closed before login to make room for newer ones, or at once for want of any room (admission.ts). */
  loginsBusy: number;
  idleTimeouts: number;
  /** Links closed for flooding (so far over the rate that holding their messages would take too long). */
  floods: number;
  heartbeats: number;
  /** Messages handed to the stream service, and of those the ones it recorded. */
  messages: number;
  recorded: number;
  /** Messages held back by the rate limit: the link was not read until their tokens were there (none is dropped). */
  rateLimited: number;
  /** JSON values or runs over the size (dropped); hex/text messages ended at the size (kept). */
  oversized: number;
  cut: number;
  /** Incomplete JSON values dropped after `jsonStallMs` of silence. */
  stalled: number;
  /** Messages the stream service refused, by reason. */
  dropped: Record<DropReason, number>;
  /** Messages that failed to be stored. */
  errors: number;
}

export interface TcpListener {
  /** Serves one accepted socket. */
  handleConnection(socket: net.Socket): void;
  /** Listens on a port (0 = any free one). */
  listen(port: number, host?: string, secure?: (socket: net.Socket) => net.Socket): Promise<AddressInfo>;
  /** Stops accepting, closes every link (devices go offline) and waits for them. */
  close(): Promise<void>;
  stats(): TcpStats;
}

interface Link {
  socket: net.Socket;
  phase: 'login' | 'auth' | 'open' | 'closed';
  login: Buffer[];
  loginLength: number;
  timer?: NodeJS.Timeout;
  identity?: DeviceIdentity;
  /** The device's session in the registry (core/device-session.ts), once logged in until the socket closes. */
  connection?: DeviceConnection;
  framer?: Framer;
  gapMs: number;
  heartbeats: Buffer[];
  gapTimer?: NodeJS.Timeout;
  /** Whether the gap timer is waiting for a JSON value to stall rather than for the gap. */
  stallWait: boolean;
  lastByte: number;
  /** Messages per second of the device (services.rateLimiter keeps its bucket). */
  rate: number;
  inFlight: number;
  paused: boolean;
  /** Set while the link is not read because the device is over its rate (or its project over its budget). */
  holdTimer?: NodeJS.Timeout;
  /** Admission of the connection (admission.ts): pending until the device has logged in. */
  ticket?: Ticket;
}

/**
 * The raw TCP listener (device-protocol.md §6): DTUs and serial bridges log in with
 * `<project key>&<access token>` and then send bytes that become messages of their type's TCP
 * stream; pushes with `push_mode=tcp` are written back as raw bytes. Nothing is ever sent that the
 * device did not ask for: no acknowledgement, no error text (a transparent DTU would pass it on).
 */
export function createTcpListener(options: TcpListenerOptions): TcpListener {
  const { services, clock = Date.now } = options;
  const o = {
    ...TCP_DEFAULTS,
    ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
  } as typeof TCP_DEFAULTS;
  const log = options.logger.child({ component: 'tcp' });
  /** This transport's counters (docs/metrics.md), made once. */
  const counts = (services.metrics ?? NO_METRICS).transport('tcp');
  const links = new Set<Link>();
  const connections = options.admission ?? createAdmission();
  const servers: net.Server[] = [];
  let closing = false;
  const stats: Omit<TcpStats, 'connections' | 'devices'> = {
    logins: 0,
    loginFailures: 0,
    loginTimeouts: 0,
    loginsBusy: 0,
    idleTimeouts: 0,
    floods: 0,
    heartbeats: 0,
    messages: 0,
    recorded: 0,
    rateLimited: 0,
    oversized: 0,
    cut: 0,
    stalled: 0,
    dropped: { unknown_stream: 0, empty: 0, too_large: 0, not_json: 0 },
    errors: 0,
  };

  /** The link's one timer: the login deadline until replaced, then a refusal's delay or the idle timeout. */
  function setTimer(link: Link, ms: number, fn: () => void) {
    if (link.timer) clearTimeout(link.timer);
    link.timer = setTimeout(fn, ms);
    link.timer.unref();
  }

  /** Ends the link; `graceful` lets written bytes go out first. */
  function end(link: Link, reason: string, graceful = false) {
    if (link.phase === 'closed') return;
    link.phase = 'closed';
    log.debug({ deviceId: link.identity?.deviceId, reason }, 'closing TCP link');
    if (graceful) {
      link.socket.end();
      setTimeout(() => link.socket.destroy(), 2_000).unref();
    } else link.socket.destroy();
  }

  /** Reads the link again unless something still holds it (messages being stored, the rate). */
  function resume(link: Link) {
    if (link.phase === 'open' && !link.paused && !link.holdTimer) link.socket.resume();
  }

  /** Stops reading the link for `ms` (the device is over its rate): nothing it sends is dropped for it. */
  function hold(link: Link, ms: number) {
    if (link.holdTimer) clearTimeout(link.holdTimer);
    link.socket.pause();
    link.holdTimer = setTimeout(() => {
      link.holdTimer = undefined;
      resume(link);
    }, ms);
    link.holdTimer.unref();
  }

  function isHeartbeat(link: Link, message: Buffer): boolean {
    return link.heartbeats.some((h) => h.equals(message));
  }

  /** One framed message: heartbeats are dropped, the rate limit applies, then the stream service stores it. */
  function deliver(link: Link, message: Buffer) {
    if (link.phase !== 'open' || !link.identity) return;
    if (isHeartbeat(link, message)) {
      stats.heartbeats += 1;
      return;
    }
    counts.received();
    // Over the rate the link is not read until the tokens are there (the messages already framed wait
    // for them, in order); a device that would have to wait longer than the limiter holds is a flood
    // (core/message-rate.ts).
    const verdict = admitMessage(
      services.rateLimiter,
      link.identity,
      link.rate,
      true,
      1 + Math.floor((message.length - 1) / COST_UNIT),
    );
    if (verdict.kind === 'flood') {
      stats.floods += 1;
      counts.dropped('rate_limited');
      log.warn(
        { deviceId: link.identity.deviceId, by: verdict.by },
        'closing a TCP link that keeps exceeding its message rate',
      );
      end(link, 'flood');
      return;
    }
    const receivedAt = link.lastByte;
    if (verdict.kind === 'wait') {
      stats.rateLimited += 1;
      hold(link, verdict.delayMs);
      // Stored after the wait even if the link closed meanwhile (the bytes arrived), unless the server stops.
      setTimeout(() => closing || store(link, message, receivedAt), verdict.delayMs);
    } else store(link, message, receivedAt);
  }

  function store(link: Link, message: Buffer, receivedAt: number) {
    if (!link.identity) return;
    stats.messages += 1;
    link.inFlight += 1;
    if (link.inFlight >= o.maxInFlight && !link.paused) {
      link.paused = true;
      link.socket.pause();
    }
    services.dataStreams
      .upstream(link.identity, 'tcp', undefined, message, receivedAt)
      .then(
        (result) => {
          if (result.recorded) stats.recorded += 1;
          else {
            stats.dropped[result.reason] += 1;
            counts.dropped(result.reason === 'too_large' ? 'too_large' : 'invalid');
          }
        },
        (err: unknown) => {
          stats.errors += 1;
          counts.dropped('other');
          log.error({ deviceId: link.identity?.deviceId, err }, 'TCP message not stored');
        },
      )
      .finally(() => {
        link.inFlight -= 1;
        if (link.paused && link.inFlight <= o.maxInFlight / 2) {
          link.paused = false;
          resume(link);
        }
      });
  }

  function noteFramer(link: Link, before: { oversized: number; cut: number }) {
    const f = link.framer!;
    const oversized = f.oversized - before.oversized;
    for (let i = 0; i < oversized; i++) counts.dropped('too_large');
    stats.oversized += oversized;
    stats.cut += f.cut - before.cut;
  }

  /** The gap passed: end what it ends; a JSON value still open gets until `jsonStallMs` after its last byte. */
  function onGap(link: Link) {
    link.gapTimer = undefined;
    const framer = link.framer;
    if (!framer || link.phase !== 'open') return;
    if (link.stallWait) {
      link.stallWait = false;
      if (framer.discard()) {
        stats.stalled += 1;
        counts.dropped('invalid');
      }
      return;
    }
    const before = { oversized: framer.oversized, cut: framer.cut };
    for (const m of framer.gap()) deliver(link, m);
    noteFramer(link, before);
    if (framer.holding) {
      link.stallWait = true;
      link.gapTimer = setTimeout(() => onGap(link), Math.max(0, o.jsonStallMs - link.gapMs));
      link.gapTimer.unref();
    }
  }

  function onData(link: Link, chunk: Buffer) {
    const framer = link.framer!;
    link.lastByte = clock();
    // Any byte, heartbeat included, keeps the link alive.
    link.timer?.refresh();
    const before = { oversized: framer.oversized, cut: framer.cut };
    for (const m of framer.push(chunk)) deliver(link, m);
    noteFramer(link, before);
    if (link.phase !== 'open') return;
    if (framer.holding) {
      if (link.gapTimer && !link.stallWait) link.gapTimer.refresh();
      else {
        if (link.gapTimer) clearTimeout(link.gapTimer);
        link.stallWait = false;
        link.gapTimer = setTimeout(() => onGap(link), link.gapMs);
        link.gapTimer.unref();
      }
    } else if (link.gapTimer) {
      clearTimeout(link.gapTimer);
      link.gapTimer = undefined;
    }
  }

  function open(link: Link, identity: DeviceIdentity, profile: TcpProfile, rateLimit: number, rest: Buffer) {
    link.identity = identity;
    link.phase = 'open';
    link.ticket?.admit();
    link.gapMs = profile.frameGapMs ?? o.frameGapMs;
    link.framer =
      profile.stream.format === 'json' ? createJsonFramer(o.maxMessageSize) : createGapFramer(o.maxMessageSize);
    if (profile.heartbeat) {
      const h = Buffer.from(profile.heartbeat, 'utf8');
      link.heartbeats = [h, Buffer.concat([h, Buffer.from('\r\n')]), Buffer.concat([h, Buffer.from('\n')])];
    }
    link.rate = rateLimit;
    stats.logins += 1;
    link.connection = attachDevice(services, {
      identity,
      transport: 'tcp',
      link: {
        // Sent = handed to the socket. Not waiting for the kernel: a device that stops reading would
        // hold the caller forever; its unread bytes are bounded by maxWriteBuffer instead.
        send: async (_topic, payload) => {
          const socket = link.socket;
          if (link.phase !== 'open' || socket.destroyed || !socket.writable) throw new Error('session closed');
          if (socket.writableLength + payload.length > o.maxWriteBuffer) {
            counts.dropped('backpressure');
            throw new Error('the device is not reading');
          }
          socket.write(payload);
          counts.sent();
        },
        close: (reason) => end(link, reason, true),
      },
      log,
      metrics: counts,
    });
    log.info({ deviceId: identity.deviceId }, 'TCP device connected');
    setTimer(link, o.idleTimeoutMs, () => {
      stats.idleTimeouts += 1;
      end(link, 'idle timeout');
    });
    if (rest.length) onData(link, rest);
    resume(link);
  }

  const { onLoginData } = createLogin<Link>({
    services,
    options: { ...o, rateLimit: options.rateLimit },
    admission: connections,
    log,
    closing: () => closing,
    setTimer,
    end,
    open,
    refused: () => (stats.loginFailures += 1),
    metrics: counts,
  });

  function handleConnection(socket: net.Socket) {
    socket.on('error', (err) => log.debug({ err }, 'TCP socket error'));
    if (closing) {
      socket.destroy();
      return;
    }
    // Past the pending limits the oldest connection of the address (or of the address holding the
    // most) is closed to make room; without any room this one is.
    const busy = () => {
      stats.loginsBusy += 1;
      if (stats.loginsBusy === 1 || stats.loginsBusy % 1000 === 0)
        log.warn(
          { ...connections.stats(), closed: stats.loginsBusy },
          'too many TCP connections waiting to log in: closing the oldest',
        );
    };
    const ticket = track(connections, socket, {
      address: socket.remoteAddress,
      busy,
      evict: () => end(link, 'pending connections of this address over the limit'),
    });
    if (!ticket) return;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, o.keepAliveMs);
    const now = clock();
    const link: Link = {
      socket,
      phase: 'login',
      login: [],
      loginLength: 0,
      gapMs: o.frameGapMs,
      heartbeats: [],
      stallWait: false,
      lastByte: now,
      rate: 1,
      inFlight: 0,
      paused: false,
      ticket,
    };
    links.add(link);
    // The login deadline is the link's one timer (setTimer), replaced by a refusal's delay or the idle timeout.
    setTimer(link, o.loginTimeoutMs, () => {
      if (link.phase !== 'login' && link.phase !== 'auth') return;
      stats.loginTimeouts += 1;
      end(link, 'login timeout');
    });
    socket.on('data', (chunk: Buffer) => {
      if (link.phase === 'login') onLoginData(link, chunk);
      else if (link.phase === 'open') onData(link, chunk);
    });
    socket.on('close', () => {
      link.phase = 'closed';
      links.delete(link);
      if (link.timer) clearTimeout(link.timer);
      if (link.gapTimer) clearTimeout(link.gapTimer);
      if (link.holdTimer) clearTimeout(link.holdTimer);
      const { connection, identity } = link;
      if (!connection || !identity) return;
      link.connection = undefined;
      connection.end();
      log.info({ deviceId: identity.deviceId }, 'TCP device disconnected');
    });
  }

  return {
    handleConnection,

    listen(port, host, secure) {
      // `secure` wraps each socket in TLS at accept (src/tls/servers.ts): served like any other from then on.
      const server = net.createServer((socket) => handleConnection(secure ? secure(socket) : socket));
      servers.push(server);
      return new Promise<AddressInfo>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          server.on('error', (err) => log.error({ err }, 'TCP listener error'));
          resolve(server.address() as AddressInfo);
        });
      });
    },

    async close() {
      closing = true;
      const stopped = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
      const gone = [...links].map(
        (link) =>
          new Promise<void>((resolve) =>
            link.socket.destroyed ? resolve() : link.socket.once('close', () => resolve()),
          ),
      );
      for (const link of links) end(link, 'server shutting down', true);
      await Promise.all([...stopped, ...gone]);
    },

    stats() {
      let devices = 0;
      for (const link of links) if (link.connection) devices += 1;
      return { ...stats, dropped: { ...stats.dropped }, connections: links.size, devices };
    },
  };
}
