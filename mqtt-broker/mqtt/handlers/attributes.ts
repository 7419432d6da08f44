import { parseJson } from '../../core/payloads.ts';
import type { UpstreamHandler } from './context.ts';

/** `attributes` (device-protocol.md §3): a report of current values, through the ingest pipeline. */
export const attributes: UpstreamHandler<'attributes'> = async ({ services, identity }, _up, payload, receipt) => {
  const { ts } = await services.currentValues.report(identity, parseJson(payload), undefined, receipt);
  return { result: 1, ts };
};
