import type { Aedes } from 'aedes';
import type { Logger } from 'pino';
import type { DomainEvents } from '../src/domain/events/event-bus.ts';
import { TtlCache } from '../src/lib/ttl-cache.ts';
import type { Services } from '../src/services.ts';

/**
 * Application subscriptions (device-protocol.md §9): read-only MQTT for integrators on the same
 * broker (TCP and WebSocket). Username = the project's view key, password = its view secret. Topics
 * `<view key>/<device view token | +>/<kind>`, kinds `attributes`, `event`, `command_reply`,
 * `online`, `data/<identifier>` and `alarm` (an alarm log entry: triggered, recovered, cleared), QoS 0,
 * subscribe only.
 *
 * Inside the broker the traffic of project P lives under `$v/<P>/<view token>/<kind>`: a viewer's
 * filters are rewritten to its own project's prefix (so it can never match another project's
 * traffic, whatever it asks for) and the key is put back on the way out. Domain events are
 * published only for projects that have a viewer connected.
 */
export const VIEW_KINDS = ['attributes', 'event', 'command_reply', 'online', 'alarm'] as const;
const VIEW_TOKEN = /^[A-Za-z0-9_-]{1,64}$/;
const STREAM = /^[A-Za-z0-9_-]{1,64}$/;

export interface Viewer {
  projectId: string;
  viewKey: string;
}

/** Whether `filter` is a topic a viewer of `viewKey` may subscribe to; returns the part after the key. */
export function viewerFilter(viewKey: string, filter: string): string | undefined {
  const parts = filter.split('/');
  if (parts[0] !== viewKey || parts.length < 3 || parts.length > 4) return undefined;
  const [, device, kind, stream] = parts as [string, string, string, string | undefined];
  if (device !== '+' && !VIEW_TOKEN.test(device)) return undefined;
  if (parts.length === 3 && !(VIEW_KINDS as readonly string[]).includes(kind)) return undefined;
  if (parts.length === 4 && !(kind === 'data' && (stream === '+' || STREAM.test(stream!)))) return undefined;
  return parts.slice(1).join('/');
}

const internalPrefix = (projectId: string) => `$v/${projectId}/`;

export interface ViewerHooksDeps {
  aedes: Aedes;
  services: Pick<Services, 'viewKey' | 'bus'>;
  /** Looks up a device's name and view token (cached here for a short while). */
  deviceInfo(projectId: string, deviceId: string): Promise<{ name: string; viewToken: string } | undefined>;
  log: Pick<Logger, 'warn' | 'debug'>;
}

export function createViewerHooks({ aedes, services, deviceInfo, log }: ViewerHooksDeps) {
  /** Connected viewers per project: events of other projects are not even built. */
  const watched = new Map<string, number>();
  const devices = new TtlCache<{ name: string; viewToken: string } | undefined>(30_000);

  const publish = async (projectId: string, deviceId: string, kind: string, body: (device: { id: string; name: string }) => unknown) => {
    const info = await devices.get(projectId, deviceId, () => deviceInfo(projectId, deviceId));
    if (!info) return;
    const payload = Buffer.from(JSON.stringify(body({ id: deviceId, name: info.name })));
    aedes.publish({ cmd: 'publish', topic: `${internalPrefix(projectId)}${info.viewToken}/${kind}`, payload, qos: 0, retain: false, dup: false }, () => {});
  };
  // Nothing is built for a project nobody watches (the common case: it costs a map lookup per event).
  const safely = <K extends Exclude<keyof DomainEvents, 'device.deleted'>>(fn: (e: DomainEvents[K]) => Promise<void>) => (e: DomainEvents[K]) => {
    if (!watched.get(e.projectId)) return;
    fn(e).catch((err: unknown) => log.warn({ err }, 'application subscription message not published'));
  };

  const unsubscribe = [
    services.bus.on('device.attributes', safely<'device.attributes'>((e) => publish(e.projectId, e.deviceId, 'attributes', (device) => ({ device, attributes: e.attributes, attr_type: e.attrType, ts: e.ts })))),
    services.bus.on('device.event', safely<'device.event'>((e) => publish(e.projectId, e.deviceId, 'event', (device) => ({ device, method: e.method, params: e.params, ts: e.ts })))),
    services.bus.on('device.command_reply', safely<'device.command_reply'>((e) => publish(e.projectId, e.deviceId, 'command_reply', (device) => ({ device, id: e.seq, command_id: e.commandId, method: e.method, params: e.params, ts: e.ts })))),
    services.bus.on('device.online', safely<'device.online'>((e) => publish(e.projectId, e.deviceId, 'online', (device) => ({ device, online: true, ts: e.ts })))),
    services.bus.on('device.offline', safely<'device.offline'>((e) => publish(e.projectId, e.deviceId, 'online', (device) => ({ device, online: false, ts: e.ts })))),
    services.bus.on('device.data', safely<'device.data'>((e) =>
      publish(e.projectId, e.deviceId, `data/${e.identifier}`, (device) => ({ device, identifier: e.identifier, direction: e.direction, transport: e.transport, hex: e.payload.toString('hex'), ts: e.ts })),
    )),
    services.bus.on('device.alarm', safely<'device.alarm'>((e) =>
      publish(e.projectId, e.deviceId, 'alarm', (device) => ({ device, id: e.alarm.id, alarm_status: e.alarm.status, alarm_level: e.alarm.level, alarm_info: e.alarm.info, ts: e.alarm.ts })),
    )),
    services.bus.on('device.deleted', (e) => devices.invalidate(e.projectId)),
  ];

  return {
    /** The viewer these credentials name, or undefined. */
    authenticate: (username: string, password: string) => services.viewKey.verify(username, password),
    connected(viewer: Viewer) {
      watched.set(viewer.projectId, (watched.get(viewer.projectId) ?? 0) + 1);
    },
    disconnected(viewer: Viewer) {
      const n = (watched.get(viewer.projectId) ?? 1) - 1;
      if (n > 0) watched.set(viewer.projectId, n);
      else watched.delete(viewer.projectId);
    },
    /** The internal filter for a viewer's subscription, or undefined to refuse it. */
    subscription(viewer: Viewer, filter: string): string | undefined {
      const rest = viewerFilter(viewer.viewKey, filter);
      return rest === undefined ? undefined : internalPrefix(viewer.projectId) + rest;
    },
    /** The topic a viewer sees for an internal one (its key put back), or undefined: not for it. */
    forward(viewer: Viewer, internal: string): string | undefined {
      const prefix = internalPrefix(viewer.projectId);
      return internal.startsWith(prefix) ? `${viewer.viewKey}/${internal.slice(prefix.length)}` : undefined;
    },
    close() {
      for (const off of unsubscribe) off();
    },
  };
}
export type ViewerHooks = ReturnType<typeof createViewerHooks>;
