import type { FastifyRequest } from 'fastify';
import type { DeviceIdentity } from '../../../domain/devices/device-identity.ts';
import type { DeviceAuthService } from '../../../domain/devices/device-auth.service.ts';
import { Forbidden, Unauthorized } from '../../../errors.ts';

/**
 * HTTP device access and the application-side calls keyed by a device token (device-protocol.md §5):
 * the `Project-Key` header plus the device access token in the path identify the device.
 */
export async function deviceOfRequest(
  deviceAuth: DeviceAuthService,
  req: FastifyRequest,
  accessToken: string,
): Promise<DeviceIdentity> {
  const header = req.headers['project-key'];
  const projectKey = Array.isArray(header) ? header[0] : header;
  if (!projectKey) throw new Unauthorized('Missing Project-Key header');
  const device = await deviceAuth.authenticate(projectKey, accessToken);
  if (!device) throw new Unauthorized('Unknown device access token or project key');
  if (device.disabled) throw new Forbidden('Device is disabled');
  return device;
}
