import { z } from 'zod';
import { SUB_ADDRESS, SUB_ADDRESS_RULE } from '../../../domain/gateways/gateways.service.ts';
import { Id, paged, pagingQuery } from '../common.schema.ts';

/** A sub-device's address within its gateway. */
export const SubAddress = z
  .string()
  .regex(SUB_ADDRESS, `must be ${SUB_ADDRESS_RULE}`)
  .describe(`Unique within the gateway; ${SUB_ADDRESS_RULE}`);

export const AttachBody = z.object({
  device: Id.describe('The sub-device: a device of the project whose device type has conn_type "2"'),
  address: SubAddress,
});

export const Attached = z.object({ id: z.string(), name: z.string(), gateway_id: z.string(), address: z.string() });

export const DetachBody = z.object({ devices: z.array(Id).min(1, 'give at least one device id').max(500) });
export const Detached = z.object({
  detached: z.array(z.string()).describe('The ids that were attached to this gateway and now are not'),
});

export const SubDevice = z.object({
  id: z.string(),
  name: z.string(),
  /** The device type id. */
  type: z.string(),
  address: z.string(),
  /** Live: the gateway said `gateway/connect` for it and is connected. */
  online: z.boolean(),
});
export const SubDeviceList = paged(SubDevice);
export const SubDeviceQuery = pagingQuery(500, 100);
