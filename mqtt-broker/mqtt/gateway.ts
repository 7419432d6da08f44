import type { Logger } from 'pino';
import type { DeviceSession } from '../../src/domain/delivery/sessions.ts';
import type { DeviceIdentity } from '../../src/domain/devices/device-identity.ts';
import { RateExceeded } from '../../src/domain/delivery/rate-limiter.ts';
import { SUB_ADDRESS } from '../../src/domain/gateways/gateways.service.ts';
import { checkModels, parseAttributes } from '../../src/domain/telemetry/current-values.service.ts';
import type { AttributeValueInput } from '../../src/db/repositories/attribute-values.repository.ts';
import { AppError, BadRequest, Forbidden, NotFound, StateConflict } from '../../src/errors.ts';
import type { Services } from '../../src/composition/services.ts';
import { GATEWAY_TOPICS, type GatewayMessage } from '../protocol/topics.ts';

/** Most sub-devices one `gateway/attributes` message may report for. */
export const MAX_GATEWAY_REPORT_DEVICES = 100;
/** Commands held for a gateway that has not subscribed to `gateway/command/send` yet; more are refused. */
const MAX_HELD_COMMANDS = 100;
/** Addresses whose sub-device identity a gateway connection remembers; beyond this the cache starts over. */
const MAX_CACHED_ADDRESSES = 10_000;
const MAX_KEYS = 200;
/** The `transport` of a sub-device's presence events: it is online because its gateway says so (device-protocol.md §11). */
const PRESENCE_TRANSPORT = 'gateway';

type Answer = Record<string, unknown>;

export interface GatewayHubDeps {
  services: Pick<
    Services,
    | 'rateLimiter'
    | 'projectSettings'
    | 'gateways'
    | 'sessions'
    | 'presence'
    | 'currentValues'
    | 'deviceEvents'
    | 'commands'
    | 'bus'
    | 'history'
  >;
  log: Pick<Logger, 'info' | 'warn' | 'debug' | 'error'>;
  clock?: () => number;
}

/** The gateway side of one gateway device's connection. */
export interface GatewayLink {
  readonly gateway: DeviceIdentity;
  /** A gateway topic the gateway published (device-protocol.md §8), answered on its response topic. */
  handle(message: GatewayMessage, payload: Buffer): Promise<Answer>;
  /** The gateway subscribed to `gateway/command/send`: held and queued commands of its sub-devices go out. */
  commandsReady(): void;
  /** The gateway's connection ended: every sub-device it carried goes offline. */
  end(reason: string): void;
}

interface SubEntry {
  identity: DeviceIdentity;
  address: string;
  session: DeviceSession;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function parseJson(payload: Buffer): unknown {
  try {
    return JSON.parse(payload.toString('utf8'));
  } catch {
    throw new BadRequest('payload must be JSON');
  }
}

/** `"device":"<addr>"` of a gateway message. */
function addressOf(body: unknown, shape: string): string {
  if (!isPlainObject(body) || typeof body.device !== 'string')
    throw new BadRequest(`payload must be ${shape}`, [{ path: 'device', message: 'required' }]);
  if (!SUB_ADDRESS.test(body.device))
    throw new BadRequest('device must be a sub-device address of 1–64 letters, digits, "_", ".", ":", "-"', [
      { path: 'device', message: 'invalid address' },
    ]);
  return body.device;
}

/**
 * Gateways on the broker (device-protocol.md §8, §11). Each connection of a gateway device gets a
 * link: it resolves addresses to the gateway's own sub-devices only, feeds their reports, events
 * and command replies to the same services as direct devices, and gives every sub-device the
 * gateway said `gateway/connect` for a DeviceSession whose `send` rewrites device topics into
 * gateway topics on the gateway's connection. Pushes, commands (queued ones included) and
 * presence therefore work for sub-devices without those services knowing about gateways.
 */
export function createGatewayHub({ services, log, clock = Date.now }: GatewayHubDeps) {
  const { sessions, presence } = services;
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

  /** Refuses values whose type contradicts the sub-device type's attribute model, before anything of the message is stored. */
  const checkSubModels = (identity: DeviceIdentity, address: string, values: AttributeValueInput[]) =>
    checkModels(services.history.modelLookup, identity, values, `${address}.`);

  function open(gateway: DeviceIdentity, gatewaySession: DeviceSession): GatewayLink {
    /** Sub-device identities by address; `generation` drops look-ups that raced with a forget. */
    const cache = new Map<string, DeviceIdentity>();
    let generation = 0;
    /** Sub-devices online through this connection, by address. */
    const online = new Map<string, SubEntry>();
    let commandsSubscribed = false;
    let held: Buffer[] = [];
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
        if (commandsSubscribed) return gatewaySession.send(GATEWAY_TOPICS.commandSend, body);
        // Sent between the gateway's CONNACK and its subscription: published to nobody it would be lost.
        if (held.length >= MAX_HELD_COMMANDS)
          return Promise.reject(new Error('the gateway has not subscribed to gateway/command/send'));
        held.push(body);
        return Promise.resolve();
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
      if (sessions.detach(entry.session)) presence.disconnected(entry.identity, PRESENCE_TRANSPORT, reason);
    }

    async function connect(address: string): Promise<Answer> {
      const identity = await mustResolve(address);
      if (identity.disabled) throw new Forbidden(`Sub-device ${address} is disabled`);
      if (ended) throw new StateConflict('the gateway connection is closing');
      const current = online.get(address);
      if (current && sessions.get(identity.deviceId) === current.session) return { result: 1, device: address };
      const entry = { identity, address } as SubEntry;
      entry.session = {
        deviceId: identity.deviceId,
        projectId: identity.projectId,
        transport: 'mqtt',
        send: (topic, payload) => sendToSub(entry, topic, payload),
        // The registry replaced the session (another connection of the device) or kicked it (token reset, deleted).
        close: (reason) => {
          if (online.get(address) === entry) online.delete(address);
          if (sessions.get(identity.deviceId) === undefined)
            presence.disconnected(identity, PRESENCE_TRANSPORT, 'kicked');
          log.info(logOf({ deviceId: identity.deviceId, reason }), 'sub-device session closed');
        },
      };
      online.set(address, entry);
      sessions.attach(entry.session);
      presence.connected(identity, PRESENCE_TRANSPORT);
      log.info(logOf({ deviceId: identity.deviceId, address }), 'sub-device connected');
      if (commandsSubscribed) deliverQueued(identity);
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

    /** `{"<addr>":{…},…}`: all or nothing — every address and value is checked before anything is stored. */
    async function report(body: unknown): Promise<Answer> {
      if (!isPlainObject(body)) throw new BadRequest('payload must be {"<addr>":{…attributes},…}');
      const entries = Object.entries(body);
      if (entries.length < 1 || entries.length > MAX_GATEWAY_REPORT_DEVICES) {
        throw new BadRequest(`payload must name 1–${MAX_GATEWAY_REPORT_DEVICES} sub-devices`);
      }
      const bad = entries.filter(([address]) => !SUB_ADDRESS.test(address)).map(([a]) => a);
      const identities = bad.length ? [] : await Promise.all(entries.map(([address]) => resolve(address)));
      const unknown = bad.length ? bad : entries.filter((_, i) => !identities[i]).map(([a]) => a);
      if (unknown.length) {
        const shown = unknown.slice(0, 10).map((a) => JSON.stringify(a.slice(0, 64)));
        throw new NotFound(`Sub-device ${shown.join(', ')}${unknown.length > 10 ? ' …' : ''} of this gateway`);
      }
      for (const [i, [address, attributes]] of entries.entries()) {
        let values: AttributeValueInput[];
        try {
          values = parseAttributes(attributes);
        } catch (err) {
          if (err instanceof BadRequest)
            throw new BadRequest(
              `device ${address}: ${err.message}`,
              err.errors.map((e) => ({ ...e, path: e.path ? `${address}.${e.path}` : address })),
            );
          throw err;
        }
        await checkSubModels(identities[i]!, address, values);
      }
      // Each sub-device's report counts against its own rate and its project's budget, as a direct
      // device's would: the message waits for the tokens of the slowest, or is refused.
      const rate = await services.projectSettings.deviceRateLimit(gateway.projectId);
      let wait = 0;
      for (const identity of identities) {
        const admission = services.rateLimiter.reserve(identity!.projectId, identity!.deviceId, rate);
        if (!admission.ok)
          throw new RateExceeded(`sub-device message rate exceeded`, Math.ceil(admission.retryMs / 1000));
        wait = Math.max(wait, admission.delayMs);
      }
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      // One time for the whole message; submitted together, the reports share an ingest batch.
      const ts = clock();
      await Promise.all(
        entries.map(([, attributes], i) => services.currentValues.report(identities[i]!, attributes, ts)),
      );
      return { result: 1, ts };
    }

    async function dispatch(message: GatewayMessage, body: unknown, setAddress: (a: string) => void): Promise<Answer> {
      switch (message) {
        case 'attributes':
          return report(body);
        case 'attributes_get': {
          const address = addressOf(body, '{"device":"<addr>","keys":[…]?}');
          setAddress(address);
          const keys = (body as Record<string, unknown>).keys;
          if (
            keys !== undefined &&
            (!Array.isArray(keys) ||
              keys.length > MAX_KEYS ||
              !keys.every((k) => typeof k === 'string' && k.length <= 64))
          ) {
            throw new BadRequest(`keys must be an array of at most ${MAX_KEYS} attribute identifiers`);
          }
          const identity = await mustResolve(address);
          const attributes = await services.currentValues.get(
            identity.projectId,
            identity.deviceId,
            keys as string[] | undefined,
          );
          return { result: 1, device: address, attributes };
        }
        case 'event_report': {
          const address = addressOf(body, '{"device":"<addr>","method":…,"params":{…}}');
          setAddress(address);
          await services.deviceEvents.report(await mustResolve(address), body);
          return { result: 1, device: address };
        }
        case 'command_reply': {
          const address = addressOf(body, '{"device":"<addr>","command":{"id","method","params"}}');
          setAddress(address);
          const command = (body as Record<string, unknown>).command;
          if (!isPlainObject(command))
            throw new BadRequest('command must be {"id":<id>,"method":…,"params":{…}}', [
              { path: 'command', message: 'required' },
            ]);
          const id = Number(command.id);
          if (!Number.isSafeInteger(id) || id < 1)
            throw new BadRequest('command.id must be the id of the command (a positive integer)', [
              { path: 'command.id', message: 'expected a positive integer' },
            ]);
          const matched = await services.commands.reply(await mustResolve(address), id, command);
          return matched
            ? { result: 1, device: address, id }
            : {
                result: 0,
                errcode: 404,
                message: 'no open command with this id',
                device: address,
                id: command.id ?? null,
              };
        }
        case 'connect':
        case 'disconnect': {
          const address = addressOf(body, '{"device":"<addr>"}');
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
        if (commandsSubscribed || ended) return;
        commandsSubscribed = true;
        const pending = held;
        held = [];
        for (const body of pending) {
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
        held = [];
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
