import type { DeviceIdentity, DevicePort } from './port.ts';

/**
 * The rate decision for one device message, the same for every transport (MQTT, raw TCP): the device's
 * bucket and its project's budget are kept by the server's rate limiter (architecture.md §8); this says
 * what the transport does with the message. How the device is told is the transport's own (an MQTT
 * answer or PUBACK reason code, a closed TCP link).
 *
 * - `go`: the message is handled now.
 * - `wait`: the tokens are taken; the message is held (its connection not read) for `delayMs`, then
 *   handled.
 * - `refuse`: over the rate, nothing taken; the message is dropped and the device may be told (429).
 *   Only for a message that may be dropped (`mayWait` false: MQTT QoS 0).
 * - `flood`: over the rate, and either the device keeps at it (refusals within the limiter's window past
 *   its threshold) or the message may not be dropped and cannot wait that long (`mayWait` true: MQTT
 *   QoS 1, a TCP stream): the transport refuses it visibly or ends the connection, never acknowledges
 *   and drops it.
 */
export type MessageVerdict =
  | { readonly kind: 'go' }
  | { readonly kind: 'wait'; readonly delayMs: number }
  | { readonly kind: 'refuse'; readonly by: 'device' | 'project' }
  | { readonly kind: 'flood'; readonly by: 'device' | 'project' };

/** The common verdict, shared: no allocation per message (the busiest path of the device edge). */
const GO: MessageVerdict = Object.freeze({ kind: 'go' });

/**
 * Asks the rate limiter for one message of `identity` at `rate` messages per second costing `cost`
 * tokens. `mayWait`: the message is acknowledged or read from a stream, so it is never dropped over the
 * rate — it waits for its tokens (the limiter's `reserve`) and is a flood when it cannot; otherwise it
 * goes now or is refused (`admit`).
 */
export function admitMessage(
  limiter: DevicePort['rateLimiter'],
  identity: DeviceIdentity,
  rate: number,
  mayWait: true,
  cost?: number,
): Exclude<MessageVerdict, { kind: 'refuse' }>;
export function admitMessage(
  limiter: DevicePort['rateLimiter'],
  identity: DeviceIdentity,
  rate: number,
  mayWait: boolean,
  cost?: number,
): MessageVerdict;
export function admitMessage(
  limiter: DevicePort['rateLimiter'],
  { projectId, deviceId }: DeviceIdentity,
  rate: number,
  mayWait: boolean,
  cost = 1,
): MessageVerdict {
  const admission = mayWait
    ? limiter.reserve(projectId, deviceId, rate, cost)
    : limiter.admit(projectId, deviceId, rate, cost);
  if (admission.ok) return admission.delayMs > 0 ? { kind: 'wait', delayMs: admission.delayMs } : GO;
  return { kind: admission.flood || mayWait ? 'flood' : 'refuse', by: admission.by };
}
