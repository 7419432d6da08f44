import { and, asc, eq, inArray, isNull, or, sql } from 'drizzle-orm';
import type { Db } from '../client.ts';
import { translating } from '../errors.ts';
import { identityColumns } from './device-auth.repository.ts';
import { devices, deviceTypes } from '../schema/index.ts';

/** A sub-device as the gateway API lists it. */
export interface SubDeviceRow {
  id: string;
  name: string;
  typeId: string | null;
  address: string;
  /** Online as last written by presence (the live state is the session; this stands in when it cannot be asked). */
  online: boolean;
}

/**
 * Gateways and their sub-devices (device-protocol.md §8): `devices.gateway_id` + `devices.sub_address`,
 * unique per gateway (index devices_gateway_address_uq). Every statement is scoped to the project.
 */
export function createGatewaysRepository(db: Db) {
  return {
    /** The sub-device of this gateway at this address, as a device identity (one indexed look-up). */
    async subByAddress(projectId: string, gatewayId: string, address: string) {
      const [row] = await db
        .select(identityColumns())
        .from(devices)
        .leftJoin(deviceTypes, eq(deviceTypes.id, devices.typeId))
        .where(and(eq(devices.gatewayId, gatewayId), eq(devices.subAddress, address), eq(devices.projectId, projectId)))
        .limit(1);
      return row;
    },

    /**
     * Attaches the device to the gateway at the address, unless it is attached to another gateway
     * meanwhile (then nothing changes and false is returned). A taken address raises Duplicate('gateway_address').
     */
    async attach(
      projectId: string,
      gatewayId: string,
      deviceId: string,
      address: string,
      now: number,
    ): Promise<boolean> {
      const rows = await translating({ unique: { gateway_address: 'gateway_address' } }, () =>
        db
          .update(devices)
          .set({ gatewayId, subAddress: address, updateTime: now })
          .where(
            and(
              eq(devices.id, deviceId),
              eq(devices.projectId, projectId),
              or(isNull(devices.gatewayId), eq(devices.gatewayId, gatewayId)),
            ),
          )
          .returning({ id: devices.id }),
      );
      return rows.length > 0;
    },

    /** Detaches those of the devices that are attached to this gateway; returns their ids. */
    async detach(projectId: string, gatewayId: string, deviceIds: string[], now: number): Promise<string[]> {
      if (!deviceIds.length) return [];
      const rows = await db
        .update(devices)
        .set({ gatewayId: null, subAddress: null, updateTime: now })
        .where(and(eq(devices.projectId, projectId), eq(devices.gatewayId, gatewayId), inArray(devices.id, deviceIds)))
        .returning({ id: devices.id });
      return rows.map((r) => r.id);
    },

    /** One page of the gateway's sub-devices, by address. */
    async page(projectId: string, gatewayId: string, limit: number, offset: number): Promise<SubDeviceRow[]> {
      const rows = await db
        .select({
          id: devices.id,
          name: devices.name,
          typeId: devices.typeId,
          address: devices.subAddress,
          online: devices.online,
        })
        .from(devices)
        .where(and(eq(devices.projectId, projectId), eq(devices.gatewayId, gatewayId)))
        .orderBy(asc(devices.subAddress))
        .limit(limit)
        .offset(offset);
      return rows.map((r) => ({ ...r, address: r.address ?? '' }));
    },

    async total(projectId: string, gatewayId: string): Promise<number> {
      const [row] = await db
        .select({ n: sql<number>`count(*)::int` })
        .from(devices)
        .where(and(eq(devices.projectId, projectId), eq(devices.gatewayId, gatewayId)));
      return row?.n ?? 0;
    },
  };
}
export type GatewaysRepository = ReturnType<typeof createGatewaysRepository>;
