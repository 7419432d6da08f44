import { StateConflict } from '../../errors.ts';

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
  /** Closes the connection; `reason` is for the log. */
  close(reason: string): void;
}

export interface SessionRegistry {
  /** Registers a session; an older session of the same device is closed and returned. */
  attach(session: DeviceSession): DeviceSession | undefined;
  /** Forgets the session if it is still the current one; returns whether it was. */
  detach(session: DeviceSession): boolean;
  get(deviceId: string): DeviceSession | undefined;
  isOnline(deviceId: string): boolean;
  /** Closes the device's session, if any (token reset, device deleted). */
  kick(deviceId: string, reason: string): void;
  /** Closes every session of the project's devices (the project was deleted). */
  kickProject(projectId: string, reason: string): void;
  readonly size: number;
}

export function createSessionRegistry(): SessionRegistry {
  const sessions = new Map<string, DeviceSession>();
  return {
    attach(session) {
      const previous = sessions.get(session.deviceId);
      sessions.set(session.deviceId, session);
      if (previous && previous !== session) {
        previous.close('replaced by a newer connection of the same device');
        return previous;
      }
      return undefined;
    },
    detach(session) {
      if (sessions.get(session.deviceId) !== session) return false;
      sessions.delete(session.deviceId);
      return true;
    },
    get: (deviceId) => sessions.get(deviceId),
    isOnline: (deviceId) => sessions.has(deviceId),
    kick(deviceId, reason) {
      const s = sessions.get(deviceId);
      if (!s) return;
      sessions.delete(deviceId);
      s.close(reason);
    },
    kickProject(projectId, reason) {
      // A rare event: a scan of the live sessions rather than a second index kept on every connect.
      for (const s of [...sessions.values()]) if (s.projectId === projectId) this.kick(s.deviceId, reason);
    },
    get size() {
      return sessions.size;
    },
  };
}

/** Sends, turning a transport failure (connection closing meanwhile) into the caller's 422. */
export async function sendOrFail(session: DeviceSession, topic: string, payload: Buffer): Promise<void> {
  try {
    await session.send(topic, payload);
  } catch (err) {
    throw new StateConflict(`Sending to the device failed: ${(err as Error)?.message || String(err)}`);
  }
}
