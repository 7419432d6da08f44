import { and, eq } from 'drizzle-orm';
import type { Db } from '../client.ts';
import { devices, deviceTypes, projects } from '../schema.ts';

export function createDeviceAuthRepository(db: Db) {
  return {
    /** The device holding this access token in the project of this key (one indexed look-up). */
    async byCredentials(projectKey: string, accessToken: string) {
      const [row] = await db
        .select({
          deviceId: devices.id,
          projectId: devices.projectId,
          name: devices.name,
          typeId: devices.typeId,
          connType: deviceTypes.connType,
          disabled: devices.disabled,
        })
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
