import { and, eq } from 'drizzle-orm';
import type { Db } from '../client.ts';
import { customerDevices, devices } from '../schema/index.ts';
import { selectExistingDeviceIds } from './customers.repository.ts';

/** The look-ups of live events (src/domain/events/live-events.ts, http-api.md §4.14): each one indexed statement. */
export function createLiveEventsRepository(db: Db) {
  return {
    /** A device's name and view token (the `device` of every message, the topic of MQTT subscribers). */
    async deviceInfo(projectId: string, deviceId: string): Promise<{ name: string; viewToken: string } | undefined> {
      const [row] = await db
        .select({ name: devices.name, viewToken: devices.viewToken })
        .from(devices)
        .where(and(eq(devices.projectId, projectId), eq(devices.id, deviceId)))
        .limit(1);
      return row;
    },

    /** Which of `ids` are devices of the project (the same statement as the customers' binding check). */
    existingDeviceIds: (projectId: string, ids: string[]) => selectExistingDeviceIds(db, projectId, ids),

    /** Every device bound to the customer. */
    async boundDeviceIds(projectId: string, customerId: string): Promise<string[]> {
      const rows = await db
        .select({ id: customerDevices.deviceId })
        .from(customerDevices)
        .where(and(eq(customerDevices.projectId, projectId), eq(customerDevices.customerId, customerId)));
      return rows.map((r) => r.id);
    },
  };
}
export type LiveEventsRepository = ReturnType<typeof createLiveEventsRepository>;
