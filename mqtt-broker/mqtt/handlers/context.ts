import type { DeviceIdentity, DevicePort } from '../../core/port.ts';
import type { GatewayMessage, Upstream } from '../../protocol/topics.ts';

/** An answer on the message's response topic (device-protocol.md §3): `{"result":1,…}` or a refusal. */
export type Answer = Record<string, unknown>;

export const failure = (errcode: number, message: string): Answer => ({ result: 0, errcode, message });

/** The gateway side of a gateway device's connection, as the `gateway/…` handler uses it (../gateway.ts GatewayLink). */
export interface GatewayHandler {
  /** A gateway topic the gateway published (device-protocol.md §8), answered on its response topic. */
  handle(message: GatewayMessage, payload: Buffer): Promise<Answer>;
}

/** What a handler of one upstream message kind gets: the services, the device, its connection's gateway side. */
export interface UpstreamContext {
  services: Pick<DevicePort, 'currentValues' | 'deviceEvents' | 'commands' | 'dataStreams'>;
  clock: () => number;
  identity: DeviceIdentity;
  /** Set on a gateway device's connection (device-protocol.md §8). */
  gateway?: GatewayHandler;
}

/**
 * Handles one upstream message of kind K; the answer goes on its response topic (none: no answer). `receipt`: the
 * key of a QoS 1 message that stores reports, recorded with them (device-protocol.md §3.3).
 */
export type UpstreamHandler<K extends Upstream['kind']> = (
  ctx: UpstreamContext,
  up: Extract<Upstream, { kind: K }>,
  payload: Buffer,
  receipt?: string,
) => Promise<Answer | undefined>;
