import { STREAM_IDENTIFIER } from './data-streams.ts';

/**
 * The device topics of device-protocol.md §3, relative to the connection: every device uses the
 * same names and the broker keeps each device's traffic private. Shared by the broker and the
 * device simulator.
 */
export const TOPICS = {
  attributes: 'attributes',
  attributesResponse: 'attributes/response',
  attributesGet: (id: number | string) => `attributes/get/${id}`,
  attributesGetResponse: (id: number | string) => `attributes/get/response/${id}`,
  attributesPush: 'attributes/push',
  attributesSeries: 'attributes/series',
  attributesSeriesResponse: 'attributes/series/response',
  eventReport: (id: number | string) => `event/report/${id}`,
  eventResponse: (id: number | string) => `event/response/${id}`,
  commandSend: (id: number | string) => `command/send/${id}`,
  commandReply: (id: number | string) => `command/reply/${id}`,
  commandReplyResponse: (id: number | string) => `command/reply/response/${id}`,
  data: (identifier: string) => `data/${identifier}`,
  dataSet: (identifier: string) => `data/${identifier}/set`,
} as const;

/** `<id>` of a topic: a non-negative integer of at most 10 digits, as the SDKs print it. */
const REQUEST_ID = /^\d{1,10}$/;

/** What a device publishes (device-protocol.md §3 "up"), parsed from its topic. */
export type Upstream =
  | { kind: 'attributes' }
  | { kind: 'attributes_get'; id: string }
  | { kind: 'attributes_series' }
  | { kind: 'event_report'; id: string }
  | { kind: 'command_reply'; id: string }
  | { kind: 'data'; identifier: string }
  | { kind: 'gateway'; message: GatewayMessage };

/** The upstream message a topic names, or undefined for anything a device may not publish. */
export function parseUpstream(topic: string): Upstream | undefined {
  if (topic === 'attributes') return { kind: 'attributes' };
  if (topic === 'attributes/series') return { kind: 'attributes_series' };
  const gateway = GATEWAY_UPSTREAM.get(topic);
  if (gateway) return { kind: 'gateway', message: gateway };
  const parts = topic.split('/');
  if (parts.length === 3) {
    const [a, b, id] = parts as [string, string, string];
    if (a === 'attributes' && b === 'get' && REQUEST_ID.test(id)) return { kind: 'attributes_get', id };
    if (a === 'event' && b === 'report' && REQUEST_ID.test(id)) return { kind: 'event_report', id };
    if (a === 'command' && b === 'reply' && REQUEST_ID.test(id)) return { kind: 'command_reply', id };
  }
  if (parts.length === 2 && parts[0] === 'data' && STREAM_IDENTIFIER.test(parts[1]!))
    return { kind: 'data', identifier: parts[1]! };
  return undefined;
}

/**
 * The response topic for an upstream message that carries an `<id>` or is answered at all: where
 * a refusal (bad input, rate limit) is reported. `data/<identifier>` has no answer topic.
 */
export function responseTopicOf(up: Upstream): string | undefined {
  switch (up.kind) {
    case 'attributes':
      return TOPICS.attributesResponse;
    case 'attributes_get':
      return TOPICS.attributesGetResponse(up.id);
    case 'attributes_series':
      return TOPICS.attributesSeriesResponse;
    case 'event_report':
      return TOPICS.eventResponse(up.id);
    case 'command_reply':
      return TOPICS.commandReplyResponse(up.id);
    case 'data':
      return undefined;
    case 'gateway':
      return GATEWAY_RESPONSE[up.message];
  }
}

/**
 * Whether a device may subscribe to this filter: only the downstream topics of device-protocol.md §3, each with `+`
 * or a concrete `<id>` / identifier in the variable level. `#`, other wildcards, `$SYS` and
 * upstream topics are refused.
 */
export function isDownstreamFilter(filter: string): boolean {
  if (
    filter === TOPICS.attributesResponse ||
    filter === TOPICS.attributesPush ||
    filter === TOPICS.attributesSeriesResponse
  )
    return true;
  const parts = filter.split('/');
  const idOrPlus = (s: string) => s === '+' || REQUEST_ID.test(s);
  if (parts.length === 4) {
    const [a, b, c, id] = parts as [string, string, string, string];
    if (a === 'attributes' && b === 'get' && c === 'response') return idOrPlus(id);
    if (a === 'command' && b === 'reply' && c === 'response') return idOrPlus(id);
  }
  if (parts.length === 3) {
    const [a, b, c] = parts as [string, string, string];
    if (a === 'event' && b === 'response') return idOrPlus(c);
    if (a === 'command' && b === 'send') return idOrPlus(c);
    if (a === 'data' && c === 'set') return b === '+' || STREAM_IDENTIFIER.test(b);
  }
  return false;
}

const PLUS = 0x2b;
const HASH = 0x23;

/**
 * Whether an MQTT topic filter (`+` one level, empty included; `#` the rest, the level above included: `a/#`
 * matches `a`) matches a topic, or the part of it from `from` on. It walks both strings level by level and makes
 * nothing: it runs for every message routed to a device (mqtt/device-router.ts), mostly to say no.
 */
export function filterMatches(filter: string, topic: string, from = 0): boolean {
  if (topic.length - from === filter.length && topic.endsWith(filter)) return true;
  const fl = filter.length;
  const tl = topic.length;
  let f = 0;
  let t = from; // -1 once the topic has no level left
  for (;;) {
    let fe = filter.indexOf('/', f);
    if (fe < 0) fe = fl;
    const width = fe - f;
    const one = width === 1 ? filter.charCodeAt(f) : 0;
    if (one === HASH) return true;
    if (t < 0) return false;
    let te = topic.indexOf('/', t);
    if (te < 0) te = tl;
    if (one !== PLUS) {
      if (te - t !== width) return false;
      for (let i = 0; i < width; i++) if (filter.charCodeAt(f + i) !== topic.charCodeAt(t + i)) return false;
    }
    if (fe === fl) return te === tl;
    f = fe + 1;
    t = te === tl ? -1 : te + 1;
  }
}

/** Whether a (permitted) subscription filter receives commands: queued ones are delivered after it. */
export const isCommandFilter = (filter: string) => filter.startsWith('command/send/');

/** What every deviceTopic starts with. */
export const DEVICE_PREFIX = '$d/';

/** Broker-internal topic of a device's downstream traffic: only that device's subscriptions match it. */
export const deviceTopic = (deviceId: string, topic: string) => `${DEVICE_PREFIX}${deviceId}/${topic}`;

/**
 * Where the device id of a deviceTopic (or a filter made the same way) ends: the index of the `/` after it, so
 * the id is `topic.slice(3, end)` and the device's own topic starts at `end + 1`. -1 for any other topic, an id
 * that is a wildcard, or `$d/<deviceId>` with no level after the id.
 */
export function deviceIdEnd(topic: string): number {
  const start = DEVICE_PREFIX.length;
  if (!topic.startsWith(DEVICE_PREFIX)) return -1;
  const end = topic.indexOf('/', start);
  if (end <= start) return -1;
  if (end === start + 1 && (topic[start] === '+' || topic[start] === '#')) return -1;
  return end;
}

/** A deviceTopic taken apart (deviceIdEnd): undefined for any other topic. */
export function splitDeviceTopic(topic: string): { id: string; rest: string } | undefined {
  const end = deviceIdEnd(topic);
  return end < 0 ? undefined : { id: topic.slice(DEVICE_PREFIX.length, end), rest: topic.slice(end + 1) };
}

/** Broker-internal topic an accepted upstream publish is routed to: no client can subscribe to it. */
export const upstreamSink = (deviceId: string, topic: string) => `$up/${deviceId}/${topic}`;

/** The relative topic of `$d/<deviceId>/<topic>` for that device, or undefined for anything else. */
export function relativeTopic(deviceId: string, internal: string): string | undefined {
  // Checked in place, without building the prefix: this runs for every message forwarded to a device.
  const end = DEVICE_PREFIX.length + deviceId.length;
  return internal.startsWith(DEVICE_PREFIX) &&
    internal.startsWith(deviceId, DEVICE_PREFIX.length) &&
    internal[end] === '/'
    ? internal.slice(end + 1)
    : undefined;
}

/**
 * Gateway topics (device-protocol.md §8): a gateway speaks for its sub-devices with these, with no
 * `<id>`; the sub-device is named by `"device":"<addr>"` in the payload. Only a connection of a
 * gateway device (conn_type "3") may publish or subscribe to them. The response topics of
 * `gateway/command/reply`, `gateway/connect` and `gateway/disconnect` are our Decision: the
 * vendor's table names none, and a gateway needs to learn of an unknown address.
 */
export const GATEWAY_TOPICS = {
  attributes: 'gateway/attributes',
  attributesResponse: 'gateway/attributes/response',
  attributesGet: 'gateway/attributes/get',
  attributesGetResponse: 'gateway/attributes/get/response',
  attributesPush: 'gateway/attributes/push',
  eventReport: 'gateway/event/report',
  eventResponse: 'gateway/event/response',
  commandSend: 'gateway/command/send',
  commandReply: 'gateway/command/reply',
  commandReplyResponse: 'gateway/command/reply/response',
  connect: 'gateway/connect',
  connectResponse: 'gateway/connect/response',
  disconnect: 'gateway/disconnect',
  disconnectResponse: 'gateway/disconnect/response',
} as const;

/** What a gateway publishes on behalf of a sub-device. */
export type GatewayMessage =
  'attributes' | 'attributes_get' | 'event_report' | 'command_reply' | 'connect' | 'disconnect';

const GATEWAY_UPSTREAM = new Map<string, GatewayMessage>([
  [GATEWAY_TOPICS.attributes, 'attributes'],
  [GATEWAY_TOPICS.attributesGet, 'attributes_get'],
  [GATEWAY_TOPICS.eventReport, 'event_report'],
  [GATEWAY_TOPICS.commandReply, 'command_reply'],
  [GATEWAY_TOPICS.connect, 'connect'],
  [GATEWAY_TOPICS.disconnect, 'disconnect'],
]);

const GATEWAY_RESPONSE: Record<GatewayMessage, string> = {
  attributes: GATEWAY_TOPICS.attributesResponse,
  attributes_get: GATEWAY_TOPICS.attributesGetResponse,
  event_report: GATEWAY_TOPICS.eventResponse,
  command_reply: GATEWAY_TOPICS.commandReplyResponse,
  connect: GATEWAY_TOPICS.connectResponse,
  disconnect: GATEWAY_TOPICS.disconnectResponse,
};

const GATEWAY_DOWNSTREAM: ReadonlySet<string> = new Set([
  ...Object.values(GATEWAY_RESPONSE),
  GATEWAY_TOPICS.attributesPush,
  GATEWAY_TOPICS.commandSend,
]);

/** Whether a gateway may subscribe to this filter: the downstream gateway topics, each exactly (no wildcards). */
export const isGatewayDownstreamFilter = (filter: string) => GATEWAY_DOWNSTREAM.has(filter);
