import { AppError, StateConflict } from '../../errors.ts';

/**
 * Live device connections, whatever carries them (MQTT, TCP): the one place the domain asks "is this
 * device online, and how do I reach it" (architecture.md §4). Transports attach sessions;
 * services send through them. One live session per device: attaching a newer one closes the older
 * (device-protocol.md §2 "the newest wins").
 */
export type Transport = 'mqtt' | 'tcp';

export interface DeviceSession {
  readonly deviceId: string;
  readonly projectId: string;
  readonly transport: Transport;
  /** Publishes to the device on a topic of device-protocol.md §3 (TCP sessions ignore the topic). */
  send(topic: string, payload: Buffer): Promise<void>;
  /**
   * Closes the connection; `reason` is for the log. `how` says why the registry closes it: `kicked` (token
   * reset, deleted: the device goes offline) or `replaced` (a newer login holds the device: it stays online).
   */
  close(reason: string, how?: 'kicked' | 'replaced'): void;
}

/**
 * Where sessions live when there are several nodes (docs/cluster.md): this node's registry tells it of the
 * sessions it attaches and detaches, and asks it for a device whose session another node holds. A port:
 * composition fills it with the adapter of src/cluster/sessions.ts; without cluster mode there is none.
 */
export interface SessionDirectory {
  /** A session became this node's current one for its device (records it cluster-wide). */
  attached(session: DeviceSession): void;
  /** The current session of its device ended here (forgets it cluster-wide, if still ours). */
  detached(session: DeviceSession): void;
  /** The device's session on another node, as a session whose send() goes there; undefined when none. */
  find(deviceId: string): Promise<DeviceSession | undefined>;
  /** Asks every other node to kick the device's session (token reset, deleted). */
  kick(deviceId: string, reason: string): void;
  /** Asks every other node to kick the sessions of the project's devices (project deleted). */
  kickProject(projectId: string, reason: string): void;
}

export interface SessionRegistry {
  /** Registers a session; an older session of the same device is closed and returned. */
  attach(session: DeviceSession): DeviceSession | undefined;
  /** Forgets the session if it is still the current one; returns whether it was. */
  detach(session: DeviceSession): boolean;
  /** The session this node holds (the device edge: its own connections). */
  get(deviceId: string): DeviceSession | undefined;
  /**
   * The device's session wherever it is: this node's, else (cluster mode) the one another node holds,
   * reached through it. What the domain sends through (pushes, reads, commands, downlinks).
   */
  locate(deviceId: string): Promise<DeviceSession | undefined>;
  /** Whether this node holds a session of the device. */
  isOnline(deviceId: string): boolean;
  /** Closes the device's session, wherever it is (token reset, device deleted). */
  kick(deviceId: string, reason: string): void;
  /** Closes every session of the project's devices, wherever they are (the project was deleted). */
  kickProject(projectId: string, reason: string): void;
  /** Closes the device's session on this node only (another node asked: its kick). */
  kickLocal(deviceId: string, reason: string): void;
  /** Closes this node's sessions of the project's devices only (another node asked). */
  kickProjectLocal(projectId: string, reason: string): void;
  /**
   * A newer login of the device holds it on another node: this node's session closes as replaced (the
   * device stays online; its end reports no disconnect). Returns whether it was still the current one.
   */
  supersede(session: DeviceSession, reason: string): boolean;
  /** This node's sessions. */
  local(): IterableIterator<DeviceSession>;
  readonly size: number;
}

export function createSessionRegistry(options: { directory?: SessionDirectory | undefined } = {}): SessionRegistry {
  const { directory } = options;
  const sessions = new Map<string, DeviceSession>();
  const registry: SessionRegistry = {
    attach(session) {
      const previous = sessions.get(session.deviceId);
      sessions.set(session.deviceId, session);
      directory?.attached(session);
      if (previous && previous !== session) {
        previous.close('replaced by a newer connection of the same device', 'replaced');
        return previous;
      }
      return undefined;
    },
    detach(session) {
      if (sessions.get(session.deviceId) !== session) return false;
      sessions.delete(session.deviceId);
      directory?.detached(session);
      return true;
    },
    get: (deviceId) => sessions.get(deviceId),
    async locate(deviceId) {
      const own = sessions.get(deviceId);
      if (own || !directory) return own;
      return directory.find(deviceId);
    },
    isOnline: (deviceId) => sessions.has(deviceId),
    kick(deviceId, reason) {
      registry.kickLocal(deviceId, reason);
      directory?.kick(deviceId, reason);
    },
    kickProject(projectId, reason) {
      registry.kickProjectLocal(projectId, reason);
      directory?.kickProject(projectId, reason);
    },
    kickLocal(deviceId, reason) {
      const s = sessions.get(deviceId);
      if (!s) return;
      sessions.delete(deviceId);
      directory?.detached(s);
      s.close(reason, 'kicked');
    },
    kickProjectLocal(projectId, reason) {
      // A rare event: a scan of the live sessions rather than a second index kept on every connect.
      for (const s of [...sessions.values()]) if (s.projectId === projectId) registry.kickLocal(s.deviceId, reason);
    },
    supersede(session, reason) {
      if (sessions.get(session.deviceId) !== session) return false;
      // Not detached from the directory: the entry is the newer login's already.
      sessions.delete(session.deviceId);
      session.close(reason, 'replaced');
      return true;
    },
    local: () => sessions.values(),
    get size() {
      return sessions.size;
    },
  };
  return registry;
}

/**
 * Sends, turning a transport failure (connection closing meanwhile) into the caller's 422; an error of the
 * domain's own (the cluster unreachable: 503) passes as it is.
 */
export async function sendOrFail(session: DeviceSession, topic: string, payload: Buffer): Promise<void> {
  try {
    await session.send(topic, payload);
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw new StateConflict(`Sending to the device failed: ${(err as Error)?.message || String(err)}`);
  }
}
