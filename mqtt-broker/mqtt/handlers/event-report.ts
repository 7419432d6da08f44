import { parseJson } from '../../core/payloads.ts';
import type { UpstreamHandler } from './context.ts';

/** `event/report/<id>` (device-protocol.md §3): logged as the device's event. */
export const eventReport: UpstreamHandler<'event_report'> = async ({ services, identity }, _up, payload) => {
  await services.deviceEvents.report(identity, parseJson(payload));
  return { result: 1 };
};
