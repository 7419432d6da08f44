import { EventEmitter } from 'node:events';

/**
 * Domain events (device-protocol.md §11): what alarms, rules and application subscriptions listen
 * to. In-process now; the interface is what a Redis/NATS bus would implement for several nodes.
 */
export interface DomainEvents {
  'device.online': { projectId: string; deviceId: string; transport: string; ts: number };
  'device.offline': { projectId: string; deviceId: string; transport: string; ts: number; reason: string };
  'device.attributes': {
    projectId: string;
    deviceId: string;
    attributes: Record<string, unknown>;
    attrType: 'report' | 'push' | 'cloud';
    ts: number;
  };
  'device.event': { projectId: string; deviceId: string; method: string; params: unknown; ts: number };
  'device.command_reply': {
    projectId: string;
    deviceId: string;
    commandId: string;
    seq: number;
    method: string;
    params: unknown;
    ts: number;
  };
  /** A custom-data-stream message (device-protocol.md §7), recorded: `up` from the device, `down` sent to it. */
  'device.data': {
    projectId: string;
    deviceId: string;
    identifier: string;
    direction: 'up' | 'down';
    transport: 'mqtt' | 'tcp';
    payload: Buffer;
    ts: number;
  };
  /**
   * The project is gone: every session of its devices (direct, TCP, gateways and their sub-devices)
   * and of its application subscribers closes, and no cached login of it is used again.
   */
  'project.deleted': { projectId: string };
  /** The project's view secret changed: application subscribers logged in with the old one are disconnected. */
  'project.viewers_revoked': { projectId: string };
  /** The device's access token changed, the device was disabled or deleted: its live sessions must close. */
  'device.credentials_revoked': { projectId: string; deviceId: string };
  /** The device's name or group membership changed (caches of it, such as the alarm evaluator's, read it again). */
  'device.updated': { projectId: string; deviceId: string };
  /** The device is gone; what it left outside foreign keys (history) is removed. */
  'device.deleted': { projectId: string; deviceId: string };
  /** A sub-device was attached to a gateway, moved to another address, or detached (device-protocol.md §8). */
  'device.gateway_changed': {
    projectId: string;
    deviceId: string;
    gatewayId: string | null;
    previousGatewayId: string | null;
  };
  /**
   * An alarm-log entry was written (src/domain/alarms): a trigger (`status` 1) or the end of an
   * alarm (`status` 0: recovered, cleared by an operator, or its rule deleted/disabled).
   */
  'device.alarm': {
    projectId: string;
    deviceId: string;
    alarm: { id: string; status: number; level: number; info: Record<string, unknown>; ts: number };
  };
  /**
   * An app, administrator or customer was deleted or changed its secret or password: its tokens issued
   * before now no longer work, and its live event streams (http-api.md §4.14) check theirs again.
   */
  'principal.revoked': { kind: 'app' | 'admin' | 'customer'; subjectId: string };
  /** Devices were bound to (`bound`) or unbound from a customer: what the customer may see changed. */
  'customer.devices_changed': { projectId: string; customerId: string; deviceIds: string[]; bound: boolean };
  /**
   * An alarm rule was created, changed or deleted on node `origin` (docs/cluster.md §4): the other nodes'
   * evaluators read the project's rules again and rebuild their state of it; the database work (ending
   * the alarms it no longer covers) was done on the origin.
   */
  'alarm_rule.changed': { projectId: string; ruleId: string; origin: string };
  /** An operator cleared an active alarm on node `origin`: the node evaluating its device forgets it. */
  'alarm.cleared': { projectId: string; deviceId: string; ruleId: string; logId: string; origin: string };
  /**
   * Cluster mode: a node raised or ended an alarm of the device (docs/cluster.md §4): the others read the device's
   * active alarms again, since the device may report through several nodes (MQTT on one, HTTP through another).
   */
  'alarm.changed': { projectId: string; deviceId: string; origin: string };
  /** A notification target was created or changed (`removed`: deleted or disabled) on node `origin`. */
  'notification_target.changed': { projectId: string; targetId: string; removed: boolean; origin: string };
  /** The project's operating limits changed (rate limit, retention, password length): cached copies are read again. */
  'project.settings_changed': { projectId: string };
  /**
   * A device type changed: its fields (`conn_type`, raw TCP settings), data streams or attribute models.
   * Cached stream profiles, attribute models and device logins of the project are read again.
   */
  'device_type.changed': { projectId: string; typeId: string };
  /** Current values of a device were removed (`identifiers`, or all when unset): values not yet written are dropped. */
  'device.attributes_removed': { projectId: string; deviceId: string; identifiers?: string[] };
}

export type DomainEventName = keyof DomainEvents;

export interface EmitOptions {
  /**
   * The event happened on another node of the cluster and is repeated here (docs/cluster.md §4): caches
   * forget what it names, but durable work (deleting rows, evaluating alarms) was done by its origin.
   */
  remote?: boolean;
}

export interface ListenOptions {
  /** Hear only the events of this node, not those repeated from other nodes (durable work, re-publishing). */
  localOnly?: boolean;
}

export interface EventBus {
  emit<K extends DomainEventName>(name: K, payload: DomainEvents[K], options?: EmitOptions): void;
  on<K extends DomainEventName>(
    name: K,
    listener: (payload: DomainEvents[K], meta: { remote: boolean }) => void,
    options?: ListenOptions,
  ): () => void;
}

const LOCAL = { remote: false } as const;
const REMOTE = { remote: true } as const;

export function createEventBus(): EventBus {
  const emitter = new EventEmitter();
  emitter.setMaxListeners(100);
  return {
    emit(name, payload, options) {
      emitter.emit(name, payload, options?.remote ? REMOTE : LOCAL);
    },
    on(name, listener, options) {
      const l = options?.localOnly
        ? (p: unknown, meta: { remote: boolean }) => {
            if (!meta.remote) (listener as (p: unknown, m: { remote: boolean }) => void)(p, meta);
          }
        : (listener as (p: unknown, m: { remote: boolean }) => void);
      emitter.on(name, l);
      return () => emitter.off(name, l);
    },
  };
}
