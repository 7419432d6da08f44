/**
 * The one door from the device edge into the server (architecture.md §4): the service methods the
 * transports (MQTT, raw TCP, gateways, application subscribers) call, and the few values and types they
 * share with the domain. Every other file under mqtt-broker/ imports src/ (src/lib aside) only through
 * here, so what the edge depends on is written down in one place.
 *
 * `Services` (src/composition/services.ts) satisfies `DevicePort` structurally: `createBroker` and
 * `createTcpListener` take the whole set of services as they are.
 */
import type { RateLimiter } from '../../src/domain/delivery/rate-limiter.ts';
import type { SessionRegistry } from '../../src/domain/delivery/sessions.ts';
import type { CommandsService } from '../../src/domain/commands/commands.service.ts';
import type { DeviceAuthService } from '../../src/domain/devices/device-auth.service.ts';
import type { DeviceEventsService } from '../../src/domain/devices/device-events.service.ts';
import type { PresenceService } from '../../src/domain/devices/presence.service.ts';
import type { EventBus } from '../../src/domain/events/event-bus.ts';
import type { LiveEvents } from '../../src/domain/events/live-events.ts';
import type { GatewaysService } from '../../src/domain/gateways/gateways.service.ts';
import type { ProjectSettingsService } from '../../src/domain/projects/project-settings.service.ts';
import type { ViewKeyService } from '../../src/domain/projects/view-key.service.ts';
import type { CurrentValuesService } from '../../src/domain/telemetry/current-values.service.ts';
import type { DataStreamsService } from '../../src/domain/telemetry/data-streams.service.ts';
import type { MetricsPort } from '../../src/domain/metrics-port.ts';

export interface DevicePort {
  rateLimiter: Pick<RateLimiter, 'admit' | 'reserve'>;
  deviceAuth: Pick<DeviceAuthService, 'authenticate' | 'mark' | 'revokedSince'>;
  sessions: Pick<SessionRegistry, 'attach' | 'detach' | 'get'>;
  presence: Pick<PresenceService, 'connected' | 'disconnected' | 'replaced'>;
  currentValues: Pick<CurrentValuesService, 'report' | 'reportSeries' | 'get' | 'reportStored'>;
  deviceEvents: Pick<DeviceEventsService, 'report'>;
  commands: Pick<CommandsService, 'reply' | 'deliverQueued'>;
  projectSettings: Pick<ProjectSettingsService, 'deviceRateLimit'>;
  viewKey: Pick<ViewKeyService, 'verify'>;
  bus: Pick<EventBus, 'on'>;
  liveEvents: Pick<LiveEvents, 'subscribe'>;
  gateways: Pick<GatewaysService, 'subDevice' | 'reportSubDevices'>;
  dataStreams: Pick<DataStreamsService, 'upstream' | 'tcpProfile'>;
  /** What the transports count (docs/metrics.md); unset = nothing (NO_METRICS). */
  metrics?: Pick<MetricsPort, 'transport' | 'viewerConnected' | 'viewerDisconnected'>;
}

export type { DeviceSession, Transport } from '../../src/domain/delivery/sessions.ts';
export type { DeviceIdentity } from '../../src/domain/devices/device-identity.ts';
export type { LiveMessage } from '../../src/domain/events/live-events.ts';
export type { DropReason, TcpProfile } from '../../src/domain/telemetry/data-streams.service.ts';
export type { LoginResult, TransportMetrics } from '../../src/domain/metrics-port.ts';
export { NO_METRICS } from '../../src/domain/metrics-port.ts';
export { AppError, BadRequest, Forbidden, NotFound, StateConflict } from '../../src/errors.ts';
export { RateExceeded } from '../../src/domain/delivery/rate-limiter.ts';
export { isTransientDbError } from '../../src/db/errors.ts';
export { VIEW_KEY_LENGTH } from '../../src/domain/projects/view-key.service.ts';
export { SUB_ADDRESS } from '../../src/domain/gateways/gateways.service.ts';
