import type { UpstreamHandler } from './context.ts';

/**
 * `data/<identifier>` (device-protocol.md §3): recorded (and counted as activity) once stored, so a QoS 1
 * PUBACK follows the write. The topic has no response topic: an unknown stream, an empty or oversized
 * payload, or non-JSON on a JSON stream is dropped and counted (DataStreamsService.stats).
 */
export const data: UpstreamHandler<'data'> = async ({ services, identity, clock }, up, payload) => {
  await services.dataStreams.upstream(identity, 'mqtt', up.identifier, payload, clock());
  return undefined;
};
