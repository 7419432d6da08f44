import { NotFound, type DeviceIdentity, type DevicePort } from './port.ts';

/** A device's login accepted: who it is, its message rate, and whether it was revoked since. */
export interface DeviceLoginAccepted {
  ok: true;
  identity: DeviceIdentity;
  /** Messages per second the device may send (services.rateLimiter keeps its bucket). */
  rate: number;
  /** deviceAuth.mark() when the login began. */
  mark: number;
  /**
   * Whether the credentials were revoked (device disabled or deleted, its project deleted) since the login
   * began: the transport checks it right before it attaches the session, and refuses the connection then.
   */
  revoked(): boolean;
}

/** A device's login refused: the transport answers it as its protocol says (MQTT: CONNACK 4 or 5; TCP: closed). */
export interface DeviceLoginRefused {
  ok: false;
  reason: 'bad login' | 'device disabled';
}

export type DeviceLogin = DeviceLoginAccepted | DeviceLoginRefused;

/**
 * The login of a device over any transport (device-protocol.md §2 MQTT CONNECT, §6 the raw TCP login
 * line): its credentials, then whether it is disabled, then its message rate (`rateLimit`, for every
 * device in tests, or its project's `device_rate_limit`). A project deleted while this runs (NotFound)
 * means the credentials are no longer valid: refused like a wrong password. Any other error is the
 * server's (the database is unavailable) and is thrown.
 */
export async function deviceLogin(
  services: Pick<DevicePort, 'deviceAuth' | 'projectSettings'>,
  projectKey: string,
  token: string,
  rateLimit?: number,
): Promise<DeviceLogin> {
  const { deviceAuth } = services;
  const mark = deviceAuth.mark();
  try {
    const identity = await deviceAuth.authenticate(projectKey, token);
    if (!identity) return { ok: false, reason: 'bad login' };
    if (identity.disabled) return { ok: false, reason: 'device disabled' };
    const rate = await (rateLimit ?? services.projectSettings.deviceRateLimit(identity.projectId));
    return { ok: true, identity, rate, mark, revoked: () => deviceAuth.revokedSince(identity, mark) };
  } catch (err) {
    if (err instanceof NotFound) return { ok: false, reason: 'bad login' };
    throw err;
  }
}
