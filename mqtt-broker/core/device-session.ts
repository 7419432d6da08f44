import type { Logger } from 'pino';
import type { DeviceIdentity, DevicePort, DeviceSession, Transport, TransportMetrics } from './port.ts';

/**
 * The life of one device connection in the session registry (architecture.md §4), the same for MQTT, raw
 * TCP and a gateway's sub-devices: attached and online when the transport says so; closed by the registry
 * when a newer connection of the device replaces it (the device stays online) or when it is kicked (token
 * reset, device deleted: it goes offline); offline when the transport ends it, unless a newer session
 * holds the device by then (device-protocol.md §2 "the newest wins").
 */
export interface DeviceConnection {
  readonly session: DeviceSession;
  /** Whether the registry closed the session by kicking it (not by a replacement). */
  readonly kicked: boolean;
  /**
   * The connection ended: forgets the session and reports the device offline when it was still the
   * current one (or was kicked: then the reason is `kicked`). Once only.
   */
  end(reason?: string): void;
}

/**
 * The transport's side of a session. An object rather than two functions, so a transport can keep it in the state
 * it already holds for each connection (methods on a prototype, no closures made for each connection).
 */
export interface DeviceLink {
  /** Publishes to the device (DeviceSession.send). */
  send(topic: string, payload: Buffer): Promise<void>;
  /** The registry closed the session: the transport closes its connection (and calls `end` once it has). */
  close(reason: string, kicked: boolean): void;
}

export interface DeviceConnectionOptions {
  identity: DeviceIdentity;
  transport: Transport;
  /** The `transport` of its presence events, when not the session's (a sub-device: `gateway`). */
  presenceAs?: string;
  link: DeviceLink;
  /** Given, `closing device connection` is logged (with the reason) before `close` (a connection of its own). */
  log?: Pick<Logger, 'info'>;
  /**
   * The transport's counters: the connection counts in `iot_connections` from attach to end (docs/metrics.md).
   * A gateway's sub-devices pass none: their gateway's connection is the one counted.
   */
  metrics?: Pick<TransportMetrics, 'connectionOpened' | 'connectionClosed'>;
}

/**
 * One device connection: it is itself the session the registry holds. A class, so the methods live on the
 * prototype: this object lives as long as the connection, and a storm makes tens of thousands of them
 * (closures per connection showed in bench:mqtt-connect's heap per connection).
 */
class Connection implements DeviceConnection, DeviceSession {
  readonly deviceId: string;
  readonly projectId: string;
  kicked = false;
  private ended = false;

  constructor(
    private readonly services: Pick<DevicePort, 'sessions' | 'presence'>,
    private readonly identity: DeviceIdentity,
    readonly transport: Transport,
    private readonly presenceAs: string,
    private readonly link: DeviceLink,
    private readonly log: DeviceConnectionOptions['log'],
    private readonly metrics: DeviceConnectionOptions['metrics'],
  ) {
    this.deviceId = identity.deviceId;
    this.projectId = identity.projectId;
  }

  get session(): DeviceSession {
    return this;
  }

  send(topic: string, payload: Buffer): Promise<void> {
    return this.link.send(topic, payload);
  }

  close(reason: string, how?: 'kicked' | 'replaced'): void {
    // The registry says why; a caller that does not: it forgets a kicked session before closing it, a
    // replaced one is replaced first (on this node, or by a newer login on another: docs/cluster.md).
    this.kicked = how ? how === 'kicked' : this.services.sessions.get(this.deviceId) === undefined;
    this.log?.info({ deviceId: this.deviceId, reason }, 'closing device connection');
    this.link.close(reason, this.kicked);
  }

  end(reason = 'disconnect'): void {
    if (this.ended) return;
    this.ended = true;
    this.metrics?.connectionClosed();
    const current = this.services.sessions.detach(this) || this.kicked;
    if (current) this.services.presence.disconnected(this.identity, this.presenceAs, this.kicked ? 'kicked' : reason);
    // A newer login holds the device: it stays online; presence forgets this session.
    else this.services.presence.replaced(this.deviceId);
  }
}

/** Creates the session and attaches it: the device is online and reachable from now on. */
export function attachDevice(
  services: Pick<DevicePort, 'sessions' | 'presence'>,
  { identity, transport, presenceAs = transport, link, log, metrics }: DeviceConnectionOptions,
): DeviceConnection {
  const connection = new Connection(services, identity, transport, presenceAs, link, log, metrics);
  metrics?.connectionOpened();
  services.sessions.attach(connection);
  services.presence.connected(identity, presenceAs);
  return connection;
}

/**
 * Commands sent to a connection before the device subscribed to them (between its CONNACK and its
 * SUBSCRIBE): published to nobody they would be lost, and time out, so they wait here, at most `limit`.
 */
export class HeldCommands<T> {
  /** Allocated by the first held command: most connections never hold one. */
  private held: T[] | undefined;
  private isReady = false;

  constructor(
    private readonly limit: number,
    /** Why a command beyond the limit is refused. */
    private readonly refusal: string,
  ) {}

  get ready(): boolean {
    return this.isReady;
  }

  /** Holds the command until `release`; refuses it beyond the limit. */
  hold(command: T): Promise<void> {
    const held = (this.held ??= []);
    if (held.length >= this.limit) return Promise.reject(new Error(this.refusal));
    held.push(command);
    return Promise.resolve();
  }

  /** The device subscribed: the held commands, which go out now; later ones are not held. */
  release(): T[] {
    this.isReady = true;
    const held = this.held ?? [];
    this.held = undefined;
    return held;
  }

  /** The connection ended: the held commands are dropped. */
  clear(): void {
    this.held = undefined;
  }
}
