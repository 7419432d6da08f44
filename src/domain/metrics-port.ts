/**
 * What the domain and the device edge tell the operator's metrics (docs/metrics.md): a narrow port, filled by
 * the composition root with src/metrics/ (prom-client), or with `NO_METRICS` when `/metrics` is off. Nothing
 * here knows Prometheus; no method takes a device, project or topic: labels are fixed, small sets.
 */
import type { CommandState } from '../db/schema/index.ts';

/** Where a device message came from or went to. */
export type MetricTransport = 'mqtt' | 'tcp' | 'http';

/** Why a device message was refused or dropped. */
export type DropReason =
  'rate_limited' | 'invalid' | 'unauthorized' | 'too_large' | 'backpressure' | 'duplicate' | 'other';

/** How a device login ended. */
export type LoginResult = 'ok' | 'bad_credentials' | 'rate_limited' | 'refused';

/** What became of one webhook delivery attempt. */
export type WebhookResult = 'ok' | 'failed' | 'retried' | 'dropped';

/**
 * The counters of one transport, made once per transport (`MetricsPort.transport`): each call is one
 * increment of a pre-bound series, nothing allocated per message.
 */
export interface TransportMetrics {
  connectionOpened(): void;
  connectionClosed(): void;
  received(): void;
  sent(): void;
  dropped(reason: DropReason): void;
  login(result: LoginResult): void;
}

export interface MetricsPort {
  /** The counters of one transport; call once when the transport is set up, not per message. */
  transport(transport: MetricTransport): TransportMetrics;
  viewerConnected(): void;
  viewerDisconnected(): void;
  /** `count` commands reached `state` (a sweep moves many at once). */
  commandState(state: CommandState, count?: number): void;
  alarmRaised(): void;
  /** An active alarm ended: recovered, cleared by an operator, or its rule changed or went. */
  alarmCleared(): void;
  webhookDelivery(result: WebhookResult): void;
  /** One ingest batch committed, `seconds` after its write began (retries included). */
  ingestBatch(seconds: number): void;
}

const nothing = () => {};
const NO_TRANSPORT: TransportMetrics = {
  connectionOpened: nothing,
  connectionClosed: nothing,
  received: nothing,
  sent: nothing,
  dropped: nothing,
  login: nothing,
};

/** Metrics off: every call does nothing. */
export const NO_METRICS: MetricsPort = {
  transport: () => NO_TRANSPORT,
  viewerConnected: nothing,
  viewerDisconnected: nothing,
  commandState: nothing,
  alarmRaised: nothing,
  alarmCleared: nothing,
  webhookDelivery: nothing,
  ingestBatch: nothing,
};
