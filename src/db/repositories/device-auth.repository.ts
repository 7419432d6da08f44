import { and, eq } from 'drizzle-orm';
import type { Db } from '../client.ts';
import { devices, deviceTypes, projects } from '../schema/index.ts';

/**
 * The columns of a device identity (src/domain/devices/device-identity.ts): what every transport knows of
 * a device once it has authenticated. Selected with `deviceTypes` left-joined on the device's type.
 */
export const identityColumns = () => ({
  deviceId: devices.id,
  projectId: devices.projectId,
  name: devices.name,
  typeId: devices.typeId,
  connType: deviceTypes.connType,
  disabled: devices.disabled,
});

export function createDeviceAuthRepository(db: Db) {
  return {
    /** The device holding this access token in the project of this key (one indexed look-up). */
    async byCredentials(projectKey: string, accessToken: string) {
      const [row] = await db
        .select(identityColumns())
        .from(devices)
        .innerJoin(projects, and(eq(projects.id, devices.projectId), eq(projects.projectKey, projectKey)))
        .leftJoin(deviceTypes, eq(deviceTypes.id, devices.typeId))
        .where(eq(devices.accessToken, accessToken))
        .limit(1);
      return row;
    },
  };
}
export type DeviceAuthRepository = ReturnType<typeof createDeviceAuthRepository>;
