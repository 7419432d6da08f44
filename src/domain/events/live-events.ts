import type { Logger } from 'pino';
import { TtlCache } from '../../lib/ttl-cache.ts';
import type { Scope } from '../auth/principal.ts';
import type { DomainEventName, DomainEvents, EventBus } from './event-bus.ts';

/**
 * Live events: the messages of application subscriptions (device-protocol.md §9), built once per domain
 * event and handed to every listener of the project — the MQTT subscribers of a view key
 * (mqtt-broker/mqtt/viewers.ts) and the event streams of the HTTP API (http-api.md §4.14).
 *
 * Nothing is built for a project nobody listens to: an event of such a project costs one map look-up.
 * The source is the event bus (src/domain/events/event-bus.ts); a bus shared by several nodes fills it
 * with every node's events, and then every listener here sees them (architecture.md §4).
 */
export const LIVE_KINDS = ['attributes', 'event', 'command_reply', 'online', 'data', 'alarm'] as const;
export type LiveKind = (typeof LIVE_KINDS)[number];

export interface LiveMessage {
  projectId: string;
  deviceId: string;
  /** The device's view token: a topic level of MQTT subscribers. */
  viewToken: string;
  kind: LiveKind;
  /** `data/<identifier>` for data messages, else the kind: the last topic levels of MQTT subscribers. */
  topic: string;
  /** The payload of device-protocol.md §9, as one line of JSON. */
  json: string;
}
export type LiveListener = (message: LiveMessage) => void;

/** The domain events that make live messages (device-protocol.md §9). */
export const LIVE_EVENT_NAMES = [
  'device.attributes',
  'device.event',
  'device.command_reply',
  'device.online',
  'device.offline',
  'device.data',
  'device.alarm',
] as const satisfies readonly DomainEventName[];
export type LiveEventName = (typeof LIVE_EVENT_NAMES)[number];

export interface LiveEventsDeps {
  bus: Pick<EventBus, 'on'>;
  /** A device's name and view token; cached here for a short while. */
  deviceInfo(projectId: string, deviceId: string): Promise<{ name: string; viewToken: string } | undefined>;
  /** Every device bound to a customer (for the watches of customer scopes). */
  boundDeviceIds(projectId: string, customerId: string): Promise<string[]>;
  logger: Pick<Logger, 'warn'>;
  /**
   * Told when the project gets its first listener on this node (`true`) and loses its last (`false`):
   * in cluster mode the node then asks the others for the project's live events (docs/cluster.md §4).
   */
  interest?: (projectId: string, listening: boolean) => void;
}

export interface WatchOptions {
  scope: Scope;
  /** Only these kinds; all when unset. */
  kinds?: ReadonlySet<LiveKind>;
  /** Only these devices; every device the scope sees when unset. */
  deviceIds?: ReadonlySet<string>;
}

export interface Watch {
  /** Stops the listener; calling it again does nothing. */
  close(): void;
}

type Device = { id: string; name: string };
type Built = { kind: LiveKind; topic: string; body: (device: Device) => unknown };

export function createLiveEvents({ bus, deviceInfo, boundDeviceIds, logger, interest }: LiveEventsDeps) {
  const listeners = new Map<string, Set<LiveListener>>();
  const devices = new TtlCache<{ name: string; viewToken: string } | undefined>(30_000);
  /** Customer watches by customer id: the devices each may see, kept current by binding changes. */
  const customers = new Map<
    string,
    Set<{ bound: Set<string>; pending?: Array<DomainEvents['customer.devices_changed']> }>
  >();

  const deliver = (projectId: string, deviceId: string, info: { name: string; viewToken: string }, built: Built) => {
    const set = listeners.get(projectId);
    if (!set) return;
    let json: string;
    try {
      json = JSON.stringify(built.body({ id: deviceId, name: info.name }));
    } catch (err) {
      // An event without the fields its kind needs (a malformed copy from another node): dropped, never thrown.
      logger.warn({ err, projectId, deviceId }, 'live event not built');
      return;
    }
    const message: LiveMessage = {
      projectId,
      deviceId,
      viewToken: info.viewToken,
      kind: built.kind,
      topic: built.topic,
      json,
    };
    for (const listener of set) {
      try {
        listener(message);
      } catch (err) {
        logger.warn({ err, projectId }, 'live event listener failed');
      }
    }
  };

  const publish = (projectId: string, deviceId: string, built: Built) => {
    // The handlers below have asked already; a listener may have left since (deliver asks again).
    const cached = devices.peek(projectId, deviceId);
    if (cached) {
      if (cached.value) deliver(projectId, deviceId, cached.value, built);
      return;
    }
    devices
      .get(projectId, deviceId, () => deviceInfo(projectId, deviceId))
      .then(
        (info) => info && deliver(projectId, deviceId, info, built),
        (err: unknown) => logger.warn({ err, projectId, deviceId }, 'live event not published'),
      );
  };

  const handlers: { [K in LiveEventName]: (e: DomainEvents[K]) => void } = {
    // Each handler asks first whether anybody listens to the project: for a project nobody listens to,
    // an event costs that one map look-up, and nothing (message, closure, topic) is built.
    'device.attributes': (e) => {
      if (listeners.has(e.projectId))
        publish(e.projectId, e.deviceId, {
          kind: 'attributes',
          topic: 'attributes',
          body: (device) => ({ device, attributes: e.attributes, attr_type: e.attrType, ts: e.ts }),
        });
    },
    'device.event': (e) => {
      if (listeners.has(e.projectId))
        publish(e.projectId, e.deviceId, {
          kind: 'event',
          topic: 'event',
          body: (device) => ({ device, method: e.method, params: e.params, ts: e.ts }),
        });
    },
    'device.command_reply': (e) => {
      if (!listeners.has(e.projectId)) return;
      publish(e.projectId, e.deviceId, {
        kind: 'command_reply',
        topic: 'command_reply',
        body: (device) => ({
          device,
          id: e.seq,
          command_id: e.commandId,
          method: e.method,
          params: e.params,
          ts: e.ts,
        }),
      });
    },
    'device.online': (e) => {
      if (listeners.has(e.projectId))
        publish(e.projectId, e.deviceId, {
          kind: 'online',
          topic: 'online',
          body: (device) => ({ device, online: true, ts: e.ts }),
        });
    },
    'device.offline': (e) => {
      if (listeners.has(e.projectId))
        publish(e.projectId, e.deviceId, {
          kind: 'online',
          topic: 'online',
          body: (device) => ({ device, online: false, ts: e.ts }),
        });
    },
    'device.data': (e) => {
      if (!listeners.has(e.projectId)) return;
      publish(e.projectId, e.deviceId, {
        kind: 'data',
        topic: `data/${e.identifier}`,
        body: (device) => ({
          device,
          identifier: e.identifier,
          direction: e.direction,
          transport: e.transport,
          hex: e.payload.toString('hex'),
          ts: e.ts,
        }),
      });
    },
    'device.alarm': (e) => {
      if (!listeners.has(e.projectId)) return;
      publish(e.projectId, e.deviceId, {
        kind: 'alarm',
        topic: 'alarm',
        body: (device) => ({
          device,
          id: e.alarm.id,
          alarm_status: e.alarm.status,
          alarm_level: e.alarm.level,
          alarm_info: e.alarm.info,
          ts: e.alarm.ts,
        }),
      });
    },
  };
  const offBus = [
    // Remote copies come through deliverRemote, never through the bus.
    ...LIVE_EVENT_NAMES.map((name) =>
      bus.on(name, handlers[name] as (e: DomainEvents[LiveEventName]) => void, { localOnly: true }),
    ),
    // A renamed or deleted device is looked up again.
    bus.on('device.updated', (e) => devices.invalidate(e.projectId)),
    bus.on('device.deleted', (e) => devices.invalidate(e.projectId)),
    bus.on('customer.devices_changed', (e) => {
      for (const w of customers.get(e.customerId) ?? []) {
        if (w.pending) w.pending.push(e);
        else applyBinding(w.bound, e);
      }
    }),
  ];

  function applyBinding(bound: Set<string>, e: DomainEvents['customer.devices_changed']) {
    for (const id of e.deviceIds) {
      if (e.bound) bound.add(id);
      else bound.delete(id);
    }
  }

  function subscribe(projectId: string, listener: LiveListener): () => void {
    let set = listeners.get(projectId);
    if (!set) {
      listeners.set(projectId, (set = new Set()));
      interest?.(projectId, true);
    }
    set.add(listener);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      set.delete(listener);
      if (!set.size && listeners.get(projectId) === set) {
        listeners.delete(projectId);
        interest?.(projectId, false);
      }
    };
  }

  return {
    /** Every live message of the project, until the returned function is called. */
    subscribe,

    /**
     * The live messages a scope may see, filtered by kind and device. A customer scope sees only the
     * devices bound to it, and that stays true as devices are bound and unbound (checked on each message
     * against the bound set, which `customer.devices_changed` keeps current).
     */
    async watch({ scope, kinds, deviceIds }: WatchOptions, listener: LiveListener): Promise<Watch> {
      let visible: (deviceId: string) => boolean = () => true;
      let forget = () => {};
      const { customerId } = scope;
      if (customerId !== undefined) {
        // Binding changes are recorded from now on and applied after the load: none is lost in between.
        const w: { bound: Set<string>; pending?: Array<DomainEvents['customer.devices_changed']> } = {
          bound: new Set(),
          pending: [],
        };
        let set = customers.get(customerId);
        if (!set) customers.set(customerId, (set = new Set()));
        set.add(w);
        forget = () => {
          set.delete(w);
          if (!set.size && customers.get(customerId) === set) customers.delete(customerId);
        };
        try {
          w.bound = new Set(await boundDeviceIds(scope.projectId, customerId));
        } catch (err) {
          forget();
          throw err;
        }
        for (const e of w.pending ?? []) applyBinding(w.bound, e);
        delete w.pending;
        visible = (deviceId) => w.bound.has(deviceId);
      }
      const off = subscribe(scope.projectId, (m) => {
        if (kinds && !kinds.has(m.kind)) return;
        if (deviceIds && !deviceIds.has(m.deviceId)) return;
        if (!visible(m.deviceId)) return;
        listener(m);
      });
      return {
        close() {
          off();
          forget();
        },
      };
    },

    /**
     * A live event of a device on another node (docs/cluster.md §4), handed to this node's listeners as if
     * it had happened here. It does not go through the bus: alarms and other listeners there already heard
     * it on its node.
     */
    deliverRemote<K extends LiveEventName>(name: K, event: DomainEvents[K]) {
      const handler = handlers[name] as ((e: DomainEvents[K]) => void) | undefined;
      try {
        handler?.(event);
      } catch (err) {
        logger.warn({ err, projectId: event.projectId }, 'live event from another node not delivered');
      }
    },

    /** Projects with a listener on this node. */
    watchedProjects: (): string[] => [...listeners.keys()],

    /** Listeners of one project, or of all projects (for tests and metrics). */
    listenerCount(projectId?: string): number {
      if (projectId !== undefined) return listeners.get(projectId)?.size ?? 0;
      let n = 0;
      for (const set of listeners.values()) n += set.size;
      return n;
    },

    /** Customer watches (for tests): each holds its bound set. */
    customerWatchCount(): number {
      let n = 0;
      for (const set of customers.values()) n += set.size;
      return n;
    },

    close() {
      for (const off of offBus) off();
      listeners.clear();
      customers.clear();
    },
  };
}
export type LiveEvents = ReturnType<typeof createLiveEvents>;
