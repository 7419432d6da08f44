import { hash } from 'node:crypto';
import type { Client, PublishPacket } from 'aedes';
import type { Logger } from 'pino';
import { admitMessage } from '../core/message-rate.ts';
import {
  AppError,
  isTransientDbError,
  RateExceeded,
  type DeviceIdentity,
  type DevicePort,
  type TransportMetrics,
} from '../core/port.ts';
import { filterMatches, responseTopicOf, type Upstream } from '../protocol/topics.ts';
import { failure, handleUpstream, RECEIPTED, type Answer, type UpstreamContext } from './handlers/index.ts';
import { createUnavailableRetry } from './retry-unavailable.ts';

/** MQTT 5 reason codes of a refused PUBLISH (3.1.1 has none: its connection is closed instead). */
const UNSPECIFIED_ERROR = 0x80;
const QUOTA_EXCEEDED = 0x97;
/** An error for Aedes' publish callback: MQTT 5 answers a QoS 1 message with its reason code, 3.1.1 closes the connection. */
const refusal = (reasonCode: number, message: string) => Object.assign(new Error(message), { reasonCode });

/** What a device's connection holds that its messages need (the broker's state of the connection). */
export interface PublishingDevice {
  identity: DeviceIdentity;
  /** Messages per second this device may send (services.rateLimiter keeps its bucket). */
  rate: number;
  /**
   * The filters granted on this connection, as the device sent them (at most maxSubscriptions): an array replaced
   * at each change, not a Set (a Set costs ~140 bytes for each connection, most of which have one or two filters).
   */
  filters: readonly string[];
  /** What the upstream handlers (handlers/) get. */
  context: UpstreamContext;
}

/**
 * The receipt of a QoS 1 message (device-protocol.md §3.3): the device, its packet id and the message itself,
 * hashed to 64 bits (16 hex digits; the database keeps them as int8). A resend carries the same packet id, topic and
 * payload; a new message reusing a packet id differs in its content or comes without DUP. MD5 in one call (the
 * payload as latin1, byte for byte) is the cheapest of Node's hashes here, 0.5 µs against SHA-256's 1.7 µs with a
 * BigInt, on the busiest path; what matters is that a key cannot be aimed at another device's (a second preimage,
 * which MD5 still resists; truncated, 2^64 work), not collisions between two messages of one's own.
 */
export function receiptOf(deviceId: string, packetId: number, topic: string, payload: Buffer): string {
  return hash('md5', `${deviceId}\u0000${packetId}\u0000${topic}\u0000${payload.toString('latin1')}`, 'hex').slice(
    0,
    16,
  );
}

/** What every delivery needs of its publisher. */
interface DeliverySteps {
  answer(device: PublishingDevice, topic: string | undefined, body: Answer): void;
  log: Pick<Logger, 'warn' | 'error'>;
  counts: Pick<TransportMetrics, 'dropped'>;
  retryUnavailable: ReturnType<typeof createUnavailableRetry>;
}

/**
 * One device message on its way, from its handler to Aedes' callback: the service finishes before the callback,
 * so a QoS 1 PUBACK means the message is stored, and a message that could not be stored is never acknowledged.
 * The busiest path of the server, so its steps are methods, not closures made per message (under tsx every named
 * closure costs a `__name` call, ~3.5% of the broker's CPU at full ingest); nothing thrown while answering
 * escapes.
 */
class Delivery {
  readonly steps: DeliverySteps;
  readonly client: Client;
  readonly device: PublishingDevice;
  readonly packet: PublishPacket;
  readonly callback: (error?: Error | null) => void;
  // Set by `start` (declared here, so every delivery has one shape).
  topic = '';
  up!: Upstream;
  responseTopic: string | undefined;
  payload!: Buffer;
  receipt: string | undefined;

  constructor(
    steps: DeliverySteps,
    client: Client,
    device: PublishingDevice,
    packet: PublishPacket,
    callback: (error?: Error | null) => void,
  ) {
    this.steps = steps;
    this.client = client;
    this.device = device;
    this.packet = packet;
    this.callback = callback;
  }

  /**
   * Handles the message on `topic` (parsed: `up`) now, or after `waitMs` (held for its tokens): a message whose
   * connection closed meanwhile is not stored, since it was never acknowledged and the device sends it again.
   */
  start(topic: string, up: Upstream, responseTopic: string | undefined, waitMs: number | undefined) {
    const { packet } = this;
    this.topic = topic;
    this.up = up;
    this.responseTopic = responseTopic;
    this.payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    // A QoS 1 report is stored with its receipt, so a resend of it after a lost acknowledgement (a connection or
    // a node lost) can be told from a new report (device-protocol.md §3.3).
    if (packet.qos === 1 && RECEIPTED.has(up.kind))
      this.receipt = receiptOf(this.device.identity.deviceId, packet.messageId!, topic, this.payload);
    if (waitMs === undefined) return void this.handle();
    setTimeout(() => {
      if (!this.client.closed) return void this.handle();
      this.steps.counts.dropped('other');
      this.callback(refusal(UNSPECIFIED_ERROR, 'connection closed'));
    }, waitMs);
  }

  /** Only a resend (DUP) is looked up: a first attempt is never one stored before. */
  handle(): Promise<void> {
    return this.receipt === undefined || !this.packet.dup ? this.store() : this.resent(this.receipt);
  }

  store(): Promise<void> {
    const { device, up, payload, receipt } = this;
    return handleUpstream(device.context, up, payload, receipt).then(
      (body) => this.done(body),
      (err: unknown) =>
        isTransientDbError(err)
          ? this.steps
              .retryUnavailable(
                device.identity.deviceId,
                () => this.client.closed,
                () => handleUpstream(device.context, up, payload, receipt),
                err,
              )
              .then(
                (body) => this.done(body),
                (e: unknown) => this.failed(e),
              )
          : this.failed(err),
    );
  }

  /**
   * A resent QoS 1 report (DUP): acknowledged without storing it when its receipt is kept (it was stored before its
   * acknowledgement was lost, device-protocol.md §3.3), else stored. A look-up that fails stores the message (at
   * least once, never lost).
   */
  resent(receipt: string): Promise<void> {
    return this.device.context.services.currentValues.reportStored(this.device.identity, receipt).then(
      (stored) => {
        if (!stored) return this.store();
        this.steps.counts.dropped('duplicate');
        this.done({ result: 1 });
      },
      (err: unknown) => {
        this.steps.log.warn(
          { deviceId: this.device.identity.deviceId, err },
          'resent report not looked up; storing it',
        );
        return this.store();
      },
    );
  }

  done(body: Answer | undefined, err?: Error) {
    if (body) {
      try {
        this.steps.answer(this.device, this.responseTopic, body);
      } catch (e) {
        this.steps.log.error(
          { deviceId: this.device.identity.deviceId, topic: this.topic, err: e },
          'answer not published',
        );
      }
    }
    this.callback(err ?? null);
  }

  failed(err: unknown) {
    const { counts, log } = this.steps;
    const { packet } = this;
    // Refused by the rate limiter once read (a gateway's sub-device): never acknowledged for QoS 1.
    if (err instanceof RateExceeded) counts.dropped('rate_limited');
    if (err instanceof RateExceeded && packet.qos > 0) {
      return this.done(
        this.client.version === 5 ? failure(429, err.message) : undefined,
        refusal(QUOTA_EXCEEDED, err.message),
      );
    }
    // Refused for its content: the device is told on the response topic, and the message is done.
    if (err instanceof AppError) {
      if (!(err instanceof RateExceeded)) counts.dropped('invalid');
      return this.done(failure(err.errcode, err.message));
    }
    // A server fault: not stored, so not acknowledged (MQTT 5: PUBACK 0x80; 3.1.1: the connection
    // closes without PUBACK and the device sends the message again).
    log.error({ deviceId: this.device.identity.deviceId, topic: this.topic, err }, 'device message not stored');
    counts.dropped('other');
    this.done(failure(500, 'internal error'), refusal(UNSPECIFIED_ERROR, 'message not stored'));
  }
}

export interface PublishOptions {
  limiter: DevicePort['rateLimiter'];
  log: Pick<Logger, 'warn' | 'error'>;
  counts: Pick<TransportMetrics, 'dropped'>;
  /** How long a message is tried again while the database is unavailable (retry-unavailable.ts). */
  retryUnavailableMs: number;
  clock: () => number;
  /** Publishes `payload` to the device on its relative `topic` (QoS 1). */
  publishTo(deviceId: string, topic: string, payload: Buffer): Promise<void>;
}

/**
 * What becomes of a device's upstream message once the broker has authorized it (architecture.md §8): the
 * rate decision (core/message-rate.ts) and how an MQTT device is told of it, the handler of its kind
 * (handlers/), and its answer and acknowledgement. Aedes' hooks stay in broker.ts.
 */
export function createPublishing(options: PublishOptions) {
  const { limiter, log, counts, publishTo } = options;
  const retryUnavailable = createUnavailableRetry(options);
  /**
   * Publishes the answer to a device message on its response topic, when the device subscribes to it
   * (most devices that only report never do: publishing to nobody would cost a trip through the
   * broker's routing for every report).
   */
  function answer(device: PublishingDevice, topic: string | undefined, body: Answer) {
    if (!topic) return;
    const { deviceId } = device.identity;
    // The connection's own filters (sessions are always clean: there are no others), at most
    // maxSubscriptions of them: the cost of an answer is bounded whatever the device subscribed to.
    let subscribed = false;
    for (const filter of device.filters) if ((subscribed = filterMatches(filter, topic))) break;
    if (!subscribed) return;
    publishTo(deviceId, topic, Buffer.from(JSON.stringify(body))).catch((err: unknown) =>
      log.warn({ deviceId, topic, err }, 'answer not delivered'),
    );
  }

  const steps: DeliverySteps = { answer, log, counts, retryUnavailable };

  /**
   * Handles the message `packet` of `device` on `topic` (parsed: `up`) and then calls Aedes' `callback`:
   * without an error once the message is done with (a QoS 1 PUBACK), with one when it must not be
   * acknowledged.
   */
  function publish(
    client: Client,
    device: PublishingDevice,
    topic: string,
    up: Upstream,
    packet: PublishPacket,
    callback: (error?: Error | null) => void,
  ) {
    const responseTopic = responseTopicOf(up);
    const { deviceId } = device.identity;
    // A QoS 1 message is acknowledged, so it is never dropped over the rate: it waits for its tokens
    // (the connection is not read meanwhile: Aedes reads on once this callback ran), or is refused
    // visibly. A QoS 0 message over the rate is dropped with a 429 answer (core/message-rate.ts).
    const verdict = admitMessage(limiter, device.identity, device.rate, packet.qos > 0);
    if (verdict.kind === 'refuse' || verdict.kind === 'flood') {
      counts.dropped('rate_limited');
      if (packet.qos === 0)
        answer(device, responseTopic, failure(429, verdict.by === 'device' ? 'rate limit' : 'project rate limit'));
      if (verdict.kind === 'refuse') return callback(null);
      log.warn({ deviceId, by: verdict.by }, 'refusing messages of a device that keeps exceeding its message rate');
      // Through Aedes' error path, never a PUBACK: MQTT 5 gets 0x97, a 3.1.1 connection is closed.
      if (packet.qos > 0) return callback(refusal(QUOTA_EXCEEDED, 'message rate exceeded'));
      client.close();
      return callback(null);
    }
    new Delivery(steps, client, device, packet, callback).start(
      topic,
      up,
      responseTopic,
      verdict.kind === 'wait' ? verdict.delayMs : undefined,
    );
  }

  return { publish };
}
