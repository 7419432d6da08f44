import type { Upstream } from '../../protocol/topics.ts';
import { attributesGet } from './attributes-get.ts';
import { attributesSeries } from './attributes-series.ts';
import { attributes } from './attributes.ts';
import { commandReply } from './command-reply.ts';
import type { Answer, UpstreamContext, UpstreamHandler } from './context.ts';
import { data } from './data.ts';
import { eventReport } from './event-report.ts';
import { gateway } from './gateway.ts';

export { failure, type Answer, type UpstreamContext } from './context.ts';

/** One module per upstream message kind (protocol/topics.ts `Upstream`), as Aedes has one per packet type. */
const handlers: { [K in Upstream['kind']]: UpstreamHandler<K> } = {
  attributes,
  attributes_get: attributesGet,
  attributes_series: attributesSeries,
  event_report: eventReport,
  command_reply: commandReply,
  gateway,
  data,
};

/** Handles a device's upstream message; its answer goes on the message's response topic. */
export function handleUpstream(
  ctx: UpstreamContext,
  up: Upstream,
  payload: Buffer,
  receipt?: string,
): Promise<Answer | undefined> {
  return (handlers[up.kind] as UpstreamHandler<Upstream['kind']>)(ctx, up, payload, receipt);
}

/** The upstream kinds whose QoS 1 messages carry a receipt (they store reports: device-protocol.md §3.3). */
export const RECEIPTED: ReadonlySet<Upstream['kind']> = new Set(['attributes', 'attributes_series']);
