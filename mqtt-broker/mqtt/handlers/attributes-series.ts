import { attributesSeries as decode } from '../../core/payloads.ts';
import type { UpstreamHandler } from './context.ts';

/** `attributes/series` (device-protocol.md §3): back-dated reports, all or nothing. */
export const attributesSeries: UpstreamHandler<'attributes_series'> = async (
  { services, identity, clock },
  _up,
  payload,
  receipt,
) => {
  // Checked whole before anything is stored, then stored as one submission: all or nothing.
  await services.currentValues.reportSeries(identity, decode(payload, clock()), receipt);
  return { result: 1, ts: clock() };
};
