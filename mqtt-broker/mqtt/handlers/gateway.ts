import { failure, type UpstreamHandler } from './context.ts';

/** `gateway/…` (device-protocol.md §8): a gateway speaking for its sub-devices (../gateway.ts). */
export const gateway: UpstreamHandler<'gateway'> = async ({ gateway }, up, payload) => {
  // Only a gateway's connection speaks for sub-devices; anyone else is refused (and cannot subscribe to the answer).
  if (!gateway) return failure(403, 'only a gateway device may publish gateway topics');
  return gateway.handle(up.message, payload);
};
