import { and, eq } from 'drizzle-orm';
import type { Db } from '../client.ts';
import { customerDevices, customers, devices, deviceTypes, projects } from '../schema/index.ts';

/** Look-ups of the certificate request (device-protocol.md §4); all but the project one are scoped by project. */
export function createCertificateRepository(db: Db) {
  return {
    async projectIdByKey(projectKey: string): Promise<string | undefined> {
      const [row] = await db
        .select({ id: projects.id })
        .from(projects)
        .where(eq(projects.projectKey, projectKey))
        .limit(1);
      return row?.id;
    },

    async deviceByKey(projectId: string, deviceKey: string) {
      const [row] = await db
        .select({
          id: devices.id,
          name: devices.name,
          accessToken: devices.accessToken,
          disabled: devices.disabled,
          connType: deviceTypes.connType,
          typeId: devices.typeId,
          typeName: deviceTypes.name,
          /** The type's key, so that a request naming the device's own type needs no other look-up. */
          typeKey: deviceTypes.typeKey,
        })
        .from(devices)
        .leftJoin(deviceTypes, eq(deviceTypes.id, devices.typeId))
        .where(and(eq(devices.projectId, projectId), eq(devices.deviceKey, deviceKey)))
        .limit(1);
      return row;
    },

    async typeByKey(projectId: string, typeKey: string) {
      const [row] = await db
        .select({
          id: deviceTypes.id,
          name: deviceTypes.name,
          connType: deviceTypes.connType,
          allowAutoCreate: deviceTypes.allowAutoCreate,
        })
        .from(deviceTypes)
        .where(and(eq(deviceTypes.projectId, projectId), eq(deviceTypes.typeKey, typeKey)))
        .limit(1);
      return row;
    },

    async customerExists(projectId: string, customerId: string): Promise<boolean> {
      const rows = await db
        .select({ id: customers.id })
        .from(customers)
        .where(and(eq(customers.projectId, projectId), eq(customers.id, customerId)))
        .limit(1);
      return rows.length > 0;
    },

    async bindCustomer(projectId: string, customerId: string, deviceId: string, now: number): Promise<void> {
      await db
        .insert(customerDevices)
        .values({ customerId, deviceId, projectId, createTime: now })
        .onConflictDoNothing();
    },
  };
}
export type CertificateRepository = ReturnType<typeof createCertificateRepository>;
