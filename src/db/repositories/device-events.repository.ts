import type { Db } from '../client.ts';
import { deviceEvents } from '../schema/index.ts';

export type NewDeviceEvent = typeof deviceEvents.$inferInsert;

/** Events reported by devices: logged, never written into attributes (device-protocol.md §3). */
export function createDeviceEventsRepository(db: Db) {
  return {
    async insert(row: NewDeviceEvent): Promise<void> {
      await db.insert(deviceEvents).values(row);
    },
  };
}
export type DeviceEventsRepository = ReturnType<typeof createDeviceEventsRepository>;
