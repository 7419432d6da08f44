import type { Aedes, Client } from 'aedes';
import type { Logger } from 'pino';
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

export interface ViewerRegistryDeps {
  aedes: Aedes;
  services: Pick<DevicePort, 'viewKey' | 'liveEvents' | 'bus'>;
  log: Pick<Logger, 'info' | 'warn'>;
  /** Filters one viewer may hold (a wildcard covers every device of the project); more are refused. */
  maxViewerSubscriptions: number;
  /** Viewers of one project connected at once; more are refused (CONNACK 5) or closed. */
  maxViewersPerProject: number;
}

/** A CONNACK refusal of a viewer's login: 4 = bad user name or password, 5 = not authorized. */
export interface ViewerRefusal {
  returnCode: 4 | 5;
  message: string;
}

interface ViewerClient {
  viewer: Viewer;
  /** The revocation number current when its login began. */
  since: number;
  /** The filters granted, rewritten into the project's namespace (at most maxViewerSubscriptions). */
  filters: Set<string>;
}

/**
 * The broker's application subscribers (a username of VIEW_KEY_LENGTH): their logins, filters, the live
 * events of the projects they watch, and their revocation (a new view secret, a deleted project: their
 * connections close at once, and a login checked against the old secret while it changed is refused;
 * revocations are numbered, a viewer remembers the number current when its login began). broker.ts asks
 * `has(client)` in each hook and hands a viewer's work here.
 */
export function createViewerRegistry({
  aedes,
  services,
  log,
  maxViewerSubscriptions,
  maxViewersPerProject,
}: ViewerRegistryDeps) {
  /** Viewers by client, from the login until the connection closes. */
  const clients = new WeakMap<Client, ViewerClient>();
  /** Connected viewers' clients per project (counted against maxViewersPerProject, closed on revocation). */
  const byProject = new Map<string, Set<Client>>();
  /** Connected viewers per project, and the project's live-events listener while there is one. */
  const watched = new Map<string, { viewers: number; off: () => void }>();
  const revokedAt = new Map<string, number>();
  let revocations = 0;

  const viewersOf = (projectId: string) => byProject.get(projectId)?.size ?? 0;
  const revoked = (projectId: string, since: number) => (revokedAt.get(projectId) ?? 0) > since;

  function revoke({ projectId }: { projectId: string }) {
    if (revokedAt.size >= 100_000) revokedAt.clear();
    revokedAt.set(projectId, ++revocations);
    const set = byProject.get(projectId);
    if (!set) return;
    log.info({ projectId, viewers: set.size }, 'closing application subscribers: credentials revoked');
    for (const client of set) client.close();
  }
  const offRevocations = [
    services.bus.on('project.viewers_revoked', revoke),
    services.bus.on('project.deleted', revoke),
  ];

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

  /** The internal filter for a viewer's subscription, or undefined to refuse it. */
  function internalFilter(viewer: Viewer, filter: string): string | undefined {
    const rest = viewerFilter(viewer.viewKey, filter);
    return rest === undefined ? undefined : internalPrefix(viewer.projectId) + rest;
  }

  return {
    /** Whether the client logged in as a viewer. */
    has: (client: Client) => clients.has(client),

    /**
     * Checks a viewer's credentials (view key, view secret); accepted (undefined), the client is a viewer
     * from now on. Rejects when they could not be checked (the database is unavailable).
     */
    async login(client: Client, viewKey: string, secret: string): Promise<ViewerRefusal | undefined> {
      const since = revocations;
      const viewer = await services.viewKey.verify(viewKey, secret);
      if (!viewer) return { returnCode: 4, message: 'bad user name or password' };
      // The secret was changed (or the project deleted) while this login was being checked.
      if (revoked(viewer.projectId, since)) return { returnCode: 4, message: 'bad user name or password' };
      if (viewersOf(viewer.projectId) >= maxViewersPerProject)
        return { returnCode: 5, message: 'too many application subscribers for this project' };
      clients.set(client, { viewer: { projectId: viewer.projectId, viewKey }, since, filters: new Set() });
      return undefined;
    },

    /**
     * A viewer's client is registered (before its CONNACK): its project is watched, and it is closed if
     * its credentials were revoked meanwhile or its project has no room left. False: not a viewer.
     */
    connected(client: Client): boolean {
      const c = clients.get(client);
      if (!c) return false;
      const { projectId } = c.viewer;
      const w = watched.get(projectId);
      if (w) w.viewers++;
      else watched.set(projectId, { viewers: 1, off: services.liveEvents.subscribe(projectId, publish) });
      if (revoked(projectId, c.since)) client.close();
      // Logins checked at the same time may all have found room: the count here is the one that holds.
      else if (viewersOf(projectId) >= maxViewersPerProject) client.close();
      else {
        let set = byProject.get(projectId);
        if (!set) byProject.set(projectId, (set = new Set()));
        set.add(client);
      }
      return true;
    },

    /** A viewer's connection closed: forgotten, and its project unwatched with its last viewer. False: not a viewer. */
    disconnected(client: Client): boolean {
      const c = clients.get(client);
      if (!c) return false;
      clients.delete(client);
      const { projectId } = c.viewer;
      const set = byProject.get(projectId);
      if (set?.delete(client) && !set.size) byProject.delete(projectId);
      const w = watched.get(projectId);
      if (w && --w.viewers <= 0) {
        w.off();
        watched.delete(projectId);
      }
      return true;
    },

    /** A viewer's SUBSCRIBE filter rewritten into its project's namespace, or undefined to refuse it. */
    subscribe(client: Client, filter: string): string | undefined {
      const c = clients.get(client);
      const topic = c && internalFilter(c.viewer, filter);
      if (topic === undefined) return undefined;
      // Bounded like a device's (a wildcard covers every device of the project).
      if (!c!.filters.has(topic) && c!.filters.size >= maxViewerSubscriptions) return undefined;
      c!.filters.add(topic);
      return topic;
    },

    /** A viewer's UNSUBSCRIBE filters, rewritten as its SUBSCRIBE filters were (others are left as they are). */
    unsubscribe(client: Client, filters: string[]): string[] {
      const c = clients.get(client);
      if (!c) return filters;
      const internal = filters.map((f) => internalFilter(c.viewer, f) ?? f);
      for (const f of internal) c.filters.delete(f);
      return internal;
    },

    /** The topic a viewer sees for an internal one (its key put back), or undefined: not for it. */
    forward(client: Client, internal: string): string | undefined {
      const c = clients.get(client);
      if (!c) return undefined;
      const prefix = internalPrefix(c.viewer.projectId);
      return internal.startsWith(prefix) ? `${c.viewer.viewKey}/${internal.slice(prefix.length)}` : undefined;
    },

    /** Subscribers are read-only: a viewer that publishes is closed (its message goes nowhere). */
    published(client: Client) {
      log.warn(
        { projectId: clients.get(client)?.viewer.projectId },
        'closing an application subscriber that tried to publish',
      );
      client.close();
    },

    close() {
      for (const off of offRevocations) off();
      for (const w of watched.values()) w.off();
      watched.clear();
    },
  };
}
export type ViewerRegistry = ReturnType<typeof createViewerRegistry>;
