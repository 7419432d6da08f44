import type { Aedes } from 'aedes';
import type { DevicePort, LiveMessage } from '../core/port.ts';
import { STREAM_IDENTIFIER } from '../protocol/data-streams.ts';

/**
 * Application subscriptions (device-protocol.md §9): read-only MQTT for integrators on the same
 * broker (TCP and WebSocket). Username = the project's view key, password = its view secret. Topics
 * `<view key>/<device view token | +>/<kind>`, kinds `attributes`, `event`, `command_reply`,
 * `online`, `data/<identifier>` and `alarm` (an alarm log entry: triggered, recovered, cleared), QoS 0,
 * subscribe only.
 *
 * Inside the broker the traffic of project P lives under `$v/<P>/<view token>/<kind>`: a viewer's
 * filters are rewritten to its own project's prefix (so it can never match another project's
 * traffic, whatever it asks for) and the key is put back on the way out. Messages come from the live
 * events fan-out (src/domain/events/live-events.ts), which the API's event streams share: they are
 * built only for projects that have a listener, and this listens only while a viewer is connected.
 */
export const VIEW_KINDS = ['attributes', 'event', 'command_reply', 'online', 'alarm'] as const;
const VIEW_TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

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
  if (parts.length === 4 && !(kind === 'data' && (stream === '+' || STREAM_IDENTIFIER.test(stream!)))) return undefined;
  return parts.slice(1).join('/');
}

const internalPrefix = (projectId: string) => `$v/${projectId}/`;

export interface ViewerHooksDeps {
  aedes: Aedes;
  services: Pick<DevicePort, 'viewKey' | 'liveEvents'>;
}

export function createViewerHooks({ aedes, services }: ViewerHooksDeps) {
  /** Connected viewers per project, and the project's live-events listener while there is one. */
  const watched = new Map<string, { viewers: number; off: () => void }>();

  // One publish per message whatever the number of viewers: Aedes hands it to each matching subscription.
  const publish = (m: LiveMessage) => {
    const payload = Buffer.from(m.json);
    aedes.publish(
      {
        cmd: 'publish',
        topic: `${internalPrefix(m.projectId)}${m.viewToken}/${m.topic}`,
        payload,
        qos: 0,
        retain: false,
        dup: false,
      },
      () => {},
    );
  };

  return {
    /** The viewer these credentials name, or undefined. */
    authenticate: (username: string, password: string) => services.viewKey.verify(username, password),
    connected(viewer: Viewer) {
      const w = watched.get(viewer.projectId);
      if (w) w.viewers++;
      else watched.set(viewer.projectId, { viewers: 1, off: services.liveEvents.subscribe(viewer.projectId, publish) });
    },
    disconnected(viewer: Viewer) {
      const w = watched.get(viewer.projectId);
      if (!w) return;
      if (--w.viewers > 0) return;
      w.off();
      watched.delete(viewer.projectId);
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
      for (const w of watched.values()) w.off();
      watched.clear();
    },
  };
}
export type ViewerHooks = ReturnType<typeof createViewerHooks>;
