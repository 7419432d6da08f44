import type { Logger } from 'pino';
import { MAX_HELD_COMMANDS } from '../core/defaults.ts';
import { attachDevice, HeldCommands, type DeviceConnection } from '../core/device-session.ts';
import { AttributeKeys, decode, gatewayCommand, KEYS_MESSAGE, parseJson, subAddress } from '../core/payloads.ts';
import {
  AppError,
  Forbidden,
  NotFound,
  StateConflict,
  type DeviceIdentity,
  type DevicePort,
  type DeviceSession,
} from '../core/port.ts';
import { GATEWAY_TOPICS, type GatewayMessage } from '../protocol/topics.ts';
import { currentAttributes } from './handlers/attributes-get.ts';
import { storeCommandReply } from './handlers/command-reply.ts';
import type { Answer, GatewayHandler } from './handlers/context.ts';
/** Addresses whose sub-device identity a gateway connection remembers; beyond this the cache starts over. */
const MAX_CACHED_ADDRESSES = 10_000;
/** The `transport` of a sub-device's presence events: it is online because its gateway says so (device-protocol.md §11). */
const PRESENCE_TRANSPORT = 'gateway';

export interface GatewayHubDeps {
  services: Pick<
    DevicePort,
    'gateways' | 'sessions' | 'presence' | 'currentValues' | 'deviceEvents' | 'commands' | 'bus'
  >;
  log: Pick<Logger, 'info' | 'warn' | 'debug' | 'error'>;
}

/** The gateway side of one gateway device's connection. */
export interface GatewayLink extends GatewayHandler {
  readonly gateway: DeviceIdentity;
  /** The gateway subscribed to `gateway/command/send`: held and queued commands of its sub-devices go out. */
  commandsReady(): void;
  /** The gateway's connection ended: every sub-device it carried goes offline. */
  end(reason: string): void;
}

interface SubEntry {
  identity: DeviceIdentity;
  address: string;
  connection: DeviceConnection;
}

/**
 * Gateways on the broker (device-protocol.md §8, §11). Each connection of a gateway device gets a
 * link: it resolves addresses to the gateway's own sub-devices only, feeds their reports, events
 * and command replies to the same services as direct devices, and gives every sub-device the
 * gateway said `gateway/connect` for a DeviceSession whose `send` rewrites device topics into
 * gateway topics on the gateway's connection. Pushes, commands (queued ones included) and
 * presence therefore work for sub-devices without those services knowing about gateways.
 */
export function createGatewayHub({ services, log }: GatewayHubDeps) {
  const { sessions } = services;
  /** Live links by gateway id (a reconnecting gateway briefly has two). */
  const links = new Map<string, Set<Link>>();

  interface Link extends GatewayLink {
    /** The device's attachment changed or the device is gone: drop it from the cache and end its session. */
    forget(deviceId: string, reason: string): void;
    /** Drops the cached identity of a sub-device (it changed); its session, if any, goes on. */
    refresh(deviceId: string): void;
  }

  const offChanged = services.bus.on('device.gateway_changed', (e) => {
    for (const gatewayId of [e.gatewayId, e.previousGatewayId]) {
      if (gatewayId)
        for (const link of links.get(gatewayId) ?? []) link.forget(e.deviceId, 'detached from its gateway');
    }
  });
  const forgetEverywhere = (projectId: string, deviceId: string, reason: string) => {
    for (const set of links.values())
      for (const link of set) if (link.gateway.projectId === projectId) link.forget(deviceId, reason);
  };
  const offDeleted = services.bus.on('device.deleted', (e) =>
    forgetEverywhere(e.projectId, e.deviceId, 'device deleted'),
  );
  // A changed device (renamed, another type) is looked up again: the cached identity must not answer for it.
  const offUpdated = services.bus.on('device.updated', (e) => {
    for (const set of links.values())
      for (const link of set) if (link.gateway.projectId === e.projectId) link.refresh(e.deviceId);
  });

  function open(gateway: DeviceIdentity, gatewaySession: DeviceSession): GatewayLink {
    /** Sub-device identities by address; `generation` drops look-ups that raced with a forget. */
    const cache = new Map<string, DeviceIdentity>();
    let generation = 0;
    /** Sub-devices online through this connection, by address. */
    const online = new Map<string, SubEntry>();
    const held = new HeldCommands<Buffer>(MAX_HELD_COMMANDS, 'the gateway has not subscribed to gateway/command/send');
    let ended = false;
    const logOf = (extra: object) => ({ gatewayId: gateway.deviceId, ...extra });

    async function resolve(address: string): Promise<DeviceIdentity | undefined> {
      const hit = cache.get(address);
      if (hit) return hit;
      const gen = generation;
      const identity = await services.gateways.subDevice(gateway, address);
      if (identity && gen === generation && !ended) {
        if (cache.size >= MAX_CACHED_ADDRESSES) cache.clear();
        cache.set(address, identity);
      }
      return identity;
    }

    async function mustResolve(address: string): Promise<DeviceIdentity> {
      const identity = await resolve(address);
      if (!identity) throw new NotFound(`Sub-device ${address} of this gateway`);
      return identity;
    }

    /** Publishes on the gateway's own connection. */
    const publish = (topic: string, body: string) => gatewaySession.send(topic, Buffer.from(body));

    /** `send` of a sub-device's session: device topics (device-protocol.md §3) become gateway topics (§8). */
    function sendToSub(entry: SubEntry, topic: string, payload: Buffer): Promise<void> {
      if (ended || online.get(entry.address) !== entry)
        return Promise.reject(new Error('the sub-device is no longer connected through its gateway'));
      const device = JSON.stringify(entry.address);
      // Payloads come from the services as serialized JSON objects: embedded as they are.
      if (topic === 'attributes/push')
        return publish(GATEWAY_TOPICS.attributesPush, `{"device":${device},"attributes":${payload.toString('utf8')}}`);
      if (topic.startsWith('command/send/')) {
        const body = Buffer.from(`{"device":${device},"command":${payload.toString('utf8')}}`);
        if (held.ready) return gatewaySession.send(GATEWAY_TOPICS.commandSend, body);
        // Sent between the gateway's CONNACK and its subscription: published to nobody it would be lost.
        return held.hold(body);
      }
      if (topic.startsWith('data/')) {
        return Promise.reject(
          new Error(
            'a gateway sub-device has no custom data streams: device-protocol.md §8 has no gateway topic for them',
          ),
        );
      }
      return Promise.reject(new Error(`no gateway topic carries ${topic}`));
    }

    function deliverQueued(identity: DeviceIdentity) {
      services.commands
        .deliverQueued(identity)
        .catch((err: unknown) =>
          log.error(logOf({ deviceId: identity.deviceId, err }), 'queued command delivery to a sub-device failed'),
        );
    }

    /** Ends a sub-device's session here; offline unless a newer session (another connection) holds the device. */
    function drop(entry: SubEntry, reason: string) {
      if (online.get(entry.address) === entry) online.delete(entry.address);
      entry.connection.end(reason);
    }

    async function connect(address: string): Promise<Answer> {
      const identity = await mustResolve(address);
      if (identity.disabled) throw new Forbidden(`Sub-device ${address} is disabled`);
      if (ended) throw new StateConflict('the gateway connection is closing');
      const current = online.get(address);
      if (current && sessions.get(identity.deviceId) === current.connection.session)
        return { result: 1, device: address };
      const entry = { identity, address } as SubEntry;
      online.set(address, entry);
      entry.connection = attachDevice(services, {
        identity,
        transport: 'mqtt',
        presenceAs: PRESENCE_TRANSPORT,
        link: {
          send: (topic, payload) => sendToSub(entry, topic, payload),
          // The registry replaced the session (another connection of the device) or kicked it (token reset,
          // deleted): there is no connection of its own to close, so a kicked one is offline at once.
          close: (reason, kicked) => {
            if (online.get(address) === entry) online.delete(address);
            if (kicked) entry.connection.end();
            log.info(logOf({ deviceId: identity.deviceId, reason }), 'sub-device session closed');
          },
        },
      });
      log.info(logOf({ deviceId: identity.deviceId, address }), 'sub-device connected');
      if (held.ready) deliverQueued(identity);
      return { result: 1, device: address };
    }

    async function disconnect(address: string): Promise<Answer> {
      await mustResolve(address);
      const entry = online.get(address);
      if (entry) {
        drop(entry, 'disconnect');
        log.info(logOf({ deviceId: entry.identity.deviceId, address }), 'sub-device disconnected');
      }
      return { result: 1, device: address };
    }

    /** `{"<addr>":{…},…}`: all or nothing (GatewaysService.reportSubDevices), addresses resolved through the cache. */
    async function report(body: unknown): Promise<Answer> {
      const { ts } = await services.gateways.reportSubDevices(gateway, body, resolve);
      return { result: 1, ts };
    }

    async function dispatch(message: GatewayMessage, body: unknown, setAddress: (a: string) => void): Promise<Answer> {
      switch (message) {
        case 'attributes':
          return report(body);
        case 'attributes_get': {
          const address = subAddress(body, '{"device":"<addr>","keys":[…]?}');
          setAddress(address);
          const keys = decode(AttributeKeys, (body as Record<string, unknown>).keys, KEYS_MESSAGE);
          const attributes = await currentAttributes(services, await mustResolve(address), keys);
          return { result: 1, device: address, attributes };
        }
        case 'event_report': {
          const address = subAddress(body, '{"device":"<addr>","method":…,"params":{…}}');
          setAddress(address);
          await services.deviceEvents.report(await mustResolve(address), body);
          return { result: 1, device: address };
        }
        case 'command_reply': {
          const address = subAddress(body, '{"device":"<addr>","command":{"id","method","params"}}');
          setAddress(address);
          const { command, id } = gatewayCommand(body as Record<string, unknown>);
          const answer = await storeCommandReply(services, await mustResolve(address), id, command);
          // A refusal names the id as the gateway sent it.
          return { ...answer, device: address, id: answer.result === 1 ? id : (command.id ?? null) };
        }
        case 'connect':
        case 'disconnect': {
          const address = subAddress(body, '{"device":"<addr>"}');
          setAddress(address);
          return message === 'connect' ? connect(address) : disconnect(address);
        }
      }
    }

    const link: Link = {
      gateway,

      async handle(message, payload) {
        let address: string | undefined;
        try {
          return await dispatch(message, parseJson(payload), (a) => (address = a));
        } catch (err) {
          // Refusals name the sub-device they were about, when the message named one.
          if (err instanceof AppError)
            return {
              result: 0,
              errcode: err.errcode,
              message: err.message,
              ...(address !== undefined ? { device: address } : {}),
            };
          throw err;
        }
      },

      commandsReady() {
        if (held.ready || ended) return;
        for (const body of held.release()) {
          gatewaySession
            .send(GATEWAY_TOPICS.commandSend, body)
            .catch((err: unknown) => log.warn(logOf({ err }), 'held sub-device command could not be published'));
        }
        for (const entry of online.values()) deliverQueued(entry.identity);
      },

      end(reason) {
        if (ended) return;
        ended = true;
        const set = links.get(gateway.deviceId);
        set?.delete(link);
        if (set && !set.size) links.delete(gateway.deviceId);
        for (const entry of [...online.values()]) drop(entry, reason);
        held.clear();
        cache.clear();
      },

      refresh(deviceId) {
        generation++;
        for (const [address, identity] of cache) if (identity.deviceId === deviceId) cache.delete(address);
      },
      forget(deviceId, reason) {
        this.refresh(deviceId);
        for (const entry of [...online.values()]) {
          if (entry.identity.deviceId !== deviceId) continue;
          drop(entry, reason);
          log.info(logOf({ deviceId, reason }), 'sub-device session ended');
        }
      },
    };
    let set = links.get(gateway.deviceId);
    if (!set) links.set(gateway.deviceId, (set = new Set()));
    set.add(link);
    return link;
  }

  return {
    open,
    /** Live gateway connections (for tests and stats). */
    get size() {
      let n = 0;
      for (const set of links.values()) n += set.size;
      return n;
    },
    close() {
      offChanged();
      offDeleted();
      offUpdated();
      for (const set of [...links.values()]) for (const link of [...set]) link.end('broker closing');
    },
  };
}
export type GatewayHub = ReturnType<typeof createGatewayHub>;
