import type { Logger } from 'pino';
import { Kvm, type KV } from '@nats-io/kv';
import type { DomainEventName, DomainEvents, EventBus } from '../domain/events/event-bus.ts';
import { LIVE_EVENT_NAMES, type LiveEventName } from '../domain/events/live-events.ts';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ClusterUnavailable, defaultNodeId, encodeJson, natsTarget, type Cluster } from './cluster.ts';

/**
 * The domain events every node hears (docs/cluster.md §4): each names something that caches of every node
 * must forget, or sessions of every node must close. Emitted on one node, each is published on
 * `<cluster>.bus.<event>` and emitted again on the bus of every other node, marked remote (listeners doing
 * durable work hear only their own node's events). Add a name here to broadcast one more event.
 */
export const BROADCAST_EVENTS: DomainEventName[] = [
  'project.deleted',
  'project.viewers_revoked',
  'project.settings_changed',
  'device.credentials_revoked',
  'device.updated',
  'device.deleted',
  'device.gateway_changed',
  'device.attributes_removed',
  'device_type.changed',
  'principal.revoked',
  'customer.devices_changed',
  // Alarm caches of every node (src/domain/alarms): rules, cleared alarms, notification targets.
  'alarm_rule.changed',
  'alarm.cleared',
  'alarm.changed',
  'notification_target.changed',
];

/** A message of the bridge: its origin node, the event's name and the event. */
interface Envelope {
  o: string;
  n: string;
  e: Record<string, unknown>;
}

/** Where remote live events go: live-events.ts's handlers, never the bus (alarms must not evaluate them twice). */
export interface LiveSink {
  deliverRemote<K extends LiveEventName>(name: K, event: DomainEvents[K]): void;
  /** Projects with a listener on this node now (announced again after NATS comes back). */
  watchedProjects(): string[];
}

export interface ClusterBusDeps {
  cluster: Cluster;
  bus: EventBus;
  logger: Pick<Logger, 'warn' | 'error'>;
  /** Given once live events exist (they are built with this bridge's `interest`). */
  live?: LiveSink;
  /** The events broadcast; BROADCAST_EVENTS unless given. */
  events?: readonly DomainEventName[];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const KEY_TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

/** An event as sent: JSON, a Buffer payload (device.data) as base64. */
function encodeEvent(name: string, event: unknown): Record<string, unknown> {
  const e = event as Record<string, unknown>;
  return name === 'device.data' && Buffer.isBuffer(e.payload) ? { ...e, payload: e.payload.toString('base64') } : e;
}
function decodeEvent(name: string, e: Record<string, unknown>): Record<string, unknown> | undefined {
  if (name !== 'device.data') return e;
  if (typeof e.payload !== 'string') return undefined;
  return { ...e, payload: Buffer.from(e.payload, 'base64') };
}

/**
 * The bridge between a node's event bus and the other nodes (docs/cluster.md §4):
 *
 * - broadcast events (BROADCAST_EVENTS) go to every node;
 * - live events (device-protocol.md §9) go only to nodes that asked for their project: a node with a live
 *   listener of project P holds the key `<P>.<node>` in the bucket `watch`; every node watches the bucket,
 *   and a live event of P is published on `<cluster>.live.<P>` only while another live node holds a key of P.
 *   Nothing is sent for a project nobody watches.
 */
export function createClusterBus({ cluster, bus, logger, live: givenLive, events = BROADCAST_EVENTS }: ClusterBusDeps) {
  const self = cluster.nodeId;
  let live = givenLive;
  let closed = false;
  const broadcast = new Set<string>(events);
  const liveNames = new Set<string>(LIVE_EVENT_NAMES);

  // Broadcast events: this node's out, the others' in (own echoes skipped).
  const off: Array<() => void> = events.map((name) =>
    bus.on(
      name,
      (e) => {
        cluster.publish(cluster.subject('bus', name), { o: self, n: name, e } satisfies Envelope);
      },
      { localOnly: true },
    ),
  );
  off.push(
    cluster.subscribe(cluster.subject('bus', '>'), (msg) => {
      const env = msg.json<Envelope>();
      if (!isObject(env) || env.o === self) return;
      if (typeof env.n !== 'string' || !broadcast.has(env.n) || !isObject(env.e)) {
        logger.warn({ subject: msg.subject }, 'malformed cluster event ignored');
        return;
      }
      bus.emit(env.n as DomainEventName, env.e as never, { remote: true });
    }),
  );

  // Who watches what: project → nodes holding a key of it (this one included).
  const watchers = new Map<string, Set<string>>();
  const watching = (projectId: string, nodeId: string, on: boolean) => {
    let set = watchers.get(projectId);
    if (on) {
      if (!set) watchers.set(projectId, (set = new Set()));
      set.add(nodeId);
    } else if (set?.delete(nodeId) && !set.size) watchers.delete(projectId);
  };
  /** Whether another live node watches the project. */
  const othersWatch = (projectId: string) => {
    const set = watchers.get(projectId);
    if (!set) return false;
    for (const n of set) if (n !== self && cluster.isAlive(n)) return true;
    return false;
  };

  // Live events of this node go out when another node watches their project.
  for (const name of LIVE_EVENT_NAMES)
    off.push(
      bus.on(
        name,
        (e) => {
          if (!othersWatch(e.projectId)) return;
          cluster.publish(cluster.subject('live', e.projectId), {
            o: self,
            n: name,
            e: encodeEvent(name, e),
          } satisfies Envelope);
        },
        { localOnly: true },
      ),
    );

  // This node's interest: subscribed before it is announced, so nothing sent after the others see it is lost.
  const subscriptions = new Map<string, () => void>();
  const onLive = (projectId: string) => (msg: { json<T>(): T; subject: string }) => {
    const env = msg.json<Envelope>();
    if (!isObject(env) || env.o === self) return;
    const e =
      typeof env.n === 'string' && liveNames.has(env.n) && isObject(env.e) ? decodeEvent(env.n, env.e) : undefined;
    if (!e || e.projectId !== projectId || typeof e.deviceId !== 'string') {
      logger.warn({ subject: msg.subject }, 'malformed live event ignored');
      return;
    }
    live?.deliverRemote(env.n as LiveEventName, e as never);
  };

  let kv: KV | undefined;
  let writes: Promise<unknown> = Promise.resolve();
  const keyOf = (projectId: string) => `${projectId}.${self}`;
  /** Key writes in order (a put and the delete after it never cross). */
  const write = (what: (kv: KV) => Promise<unknown>) => {
    writes = writes
      .then(() => kv && !closed && what(kv))
      .catch((err: unknown) => {
        if (cluster.status === 'connected') logger.warn({ err }, 'live-event interest not recorded');
      });
    return writes;
  };

  function interest(projectId: string, listening: boolean) {
    if (closed || !KEY_TOKEN.test(projectId)) return;
    if (listening) {
      if (!subscriptions.has(projectId))
        subscriptions.set(projectId, cluster.subscribe(cluster.subject('live', projectId), onLive(projectId)));
      watching(projectId, self, true);
      void write((b) => b.put(keyOf(projectId), new Uint8Array()));
    } else {
      subscriptions.get(projectId)?.();
      subscriptions.delete(projectId);
      watching(projectId, self, false);
      void write((b) => b.delete(keyOf(projectId)));
    }
  }

  const announce = () => {
    for (const p of live?.watchedProjects() ?? []) void write((b) => b.put(keyOf(p), new Uint8Array()));
  };
  off.push(cluster.onReconnect(announce));
  // A lost node's keys go (any node may delete them; entries of dead nodes are ignored meanwhile).
  off.push(
    cluster.onNodeLost((nodeId) => {
      for (const [projectId, set] of watchers)
        if (set.has(nodeId)) void write((b) => b.delete(`${projectId}.${nodeId}`));
    }),
  );

  /** Follows the bucket; started again (after a second) whenever the watch ends or cannot start. */
  let stopWatch = () => {};
  let firstWatch: (() => void) | undefined;
  const ready = new Promise<void>((resolve) => (firstWatch = resolve));
  const follow = async (): Promise<void> => {
    if (closed) return;
    const bucket = await cluster.bucket('watch');
    kv = bucket;
    const iter = await bucket.watch({ key: '>' });
    stopWatch = () => iter.stop();
    // The entries come again from the start: other nodes' interest is rebuilt from them.
    for (const [projectId, set] of watchers) for (const n of set) if (n !== self) watching(projectId, n, false);
    announce();
    firstWatch?.();
    for await (const entry of iter) {
      const dot = entry.key.indexOf('.');
      if (dot <= 0) continue;
      const projectId = entry.key.slice(0, dot);
      const nodeId = entry.key.slice(dot + 1);
      if (nodeId === self) {
        // A key of this node's earlier life (same NODE_ID) that nobody here listens to any more.
        if (!entry.isUpdate && entry.operation === 'PUT' && !subscriptions.has(projectId))
          void write((b) => b.delete(entry.key));
        continue;
      }
      watching(projectId, nodeId, entry.operation === 'PUT');
    }
  };
  const keepFollowing = () => {
    follow()
      .catch((err: unknown) => {
        if (!closed) logger.warn({ err }, 'live-event interest watch failed');
      })
      .finally(() => {
        if (closed) return;
        retry = setTimeout(keepFollowing, 1_000);
        retry.unref();
      });
  };
  let retry: NodeJS.Timeout | undefined;
  keepFollowing();
  off.push(() => {
    clearTimeout(retry);
    stopWatch();
  });

  return {
    /** live-events.ts's `interest`: the project got its first listener here, or lost its last. */
    interest,
    /** Attaches the live events once built (they take `interest` at construction). */
    setLive(sink: LiveSink) {
      live = sink;
    },
    /** Resolves once the interest bucket is watched (for tests). */
    ready,
    /** Whether a live event of the project would be sent now (for tests). */
    othersWatch,
    async close() {
      // Withdrawn only while NATS answers: during an outage the others drop a lost node's keys themselves, and a
      // shutdown must not wait out one KV timeout per watched project.
      if (cluster.status === 'connected') {
        const mine = [...subscriptions.keys()];
        for (const p of mine) interest(p, false);
      }
      await Promise.race([writes, new Promise((r) => setTimeout(r, 3_000).unref())]);
      closed = true;
      for (const o of off) o();
    },
  };
}
export type ClusterBus = ReturnType<typeof createClusterBus>;

/**
 * For a process that is not a node (the CLI with DATABASE_URL and NATS_URL, docs/cluster.md §4): the
 * broadcast events its own bus emits are published to the running nodes over one short NATS connection,
 * so a project deleted from the command line closes its sessions and empties the caches of every node.
 */
export async function connectBusPublisher(options: {
  servers: string;
  /** CLUSTER_NAME of the nodes. */
  name: string;
  /** NATS_TLS_CA_FILE. */
  caFile?: string | undefined;
  bus: Pick<EventBus, 'on'>;
  events?: readonly DomainEventName[];
}): Promise<{ close(): Promise<void>; liveNodes: number }> {
  const { name, bus, events = BROADCAST_EVENTS } = options;
  const target = natsTarget(options.servers, options.caFile);
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: target.servers,
      ...target.options,
      name: `${name}:cli`,
      maxReconnectAttempts: 0,
      timeout: 5_000,
    });
  } catch (err) {
    throw new ClusterUnavailable(
      `cannot reach NATS at ${target.shown} (${(err as Error).message}): the running nodes would not hear of this change; check NATS_URL`,
    );
  }
  // How many nodes of this CLUSTER_NAME beat now: none means a wrong name, or no node running.
  let liveNodes = 0;
  try {
    const nodes = await new Kvm(nc).open(`${name}_nodes`);
    for await (const _key of await nodes.keys()) liveNodes++;
  } catch {
    liveNodes = 0;
  }
  const origin = `cli-${defaultNodeId()}`;
  const off = events.map((event) =>
    bus.on(
      event,
      (e) => nc.publish(`${name}.bus.${event}`, encodeJson({ o: origin, n: event, e } satisfies Envelope)),
      { localOnly: true },
    ),
  );
  return {
    liveNodes,
    async close() {
      for (const o of off) o();
      await nc.drain().catch(() => {});
    },
  };
}
