import type { Logger } from 'pino';
import type { DeviceIdentity, DevicePort, DeviceSession, Transport } from './port.ts';

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

export interface DeviceConnectionOptions {
  identity: DeviceIdentity;
  transport: Transport;
  /** The `transport` of its presence events, when not the session's (a sub-device: `gateway`). */
  presenceAs?: string;
  /** Publishes to the device (DeviceSession.send). */
  send: DeviceSession['send'];
  /** The registry closed the session: the transport closes its connection (and calls `end` once it has). */
  close(reason: string, kicked: boolean): void;
  /** Given, `closing device connection` is logged (with the reason) before `close` (a connection of its own). */
  log?: Pick<Logger, 'info'>;
}

/** Creates the session and attaches it: the device is online and reachable from now on. */
export function attachDevice(
  { sessions, presence }: Pick<DevicePort, 'sessions' | 'presence'>,
  { identity, transport, presenceAs = transport, send, close, log }: DeviceConnectionOptions,
): DeviceConnection {
  let kicked = false;
  let ended = false;
  const session: DeviceSession = {
    deviceId: identity.deviceId,
    projectId: identity.projectId,
    transport,
    send,
    close: (reason) => {
      // The registry forgets a kicked session before closing it; a replaced one is replaced first.
      kicked = sessions.get(identity.deviceId) === undefined;
      log?.info({ deviceId: identity.deviceId, reason }, 'closing device connection');
      close(reason, kicked);
    },
  };
  const connection: DeviceConnection = {
    session,
    get kicked() {
      return kicked;
    },
    end(reason = 'disconnect') {
      if (ended) return;
      ended = true;
      const current = sessions.detach(session) || kicked;
      if (current) presence.disconnected(identity, presenceAs, kicked ? 'kicked' : reason);
    },
  };
  sessions.attach(session);
  presence.connected(identity, presenceAs);
  return connection;
}

/**
 * Commands sent to a connection before the device subscribed to them (between its CONNACK and its
 * SUBSCRIBE): published to nobody they would be lost, and time out, so they wait here, at most `limit`.
 */
export class HeldCommands<T> {
  private held: T[] = [];
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
    if (this.held.length >= this.limit) return Promise.reject(new Error(this.refusal));
    this.held.push(command);
    return Promise.resolve();
  }

  /** The device subscribed: the held commands, which go out now; later ones are not held. */
  release(): T[] {
    this.isReady = true;
    return this.held.splice(0);
  }

  /** The connection ended: the held commands are dropped. */
  clear(): void {
    this.held = [];
  }
}
