import { Duplicate } from '../../db/errors.ts';
import type { AttributeValueInput } from '../../db/repositories/attribute-values.repository.ts';
import type { DevicesRepository } from '../../db/repositories/devices.repository.ts';
import type { GatewaysRepository } from '../../db/repositories/gateways.repository.ts';
import { BadRequest, Conflict, NotFound } from '../../errors.ts';
import type { Scope } from '../auth/principal.ts';
import { RateExceeded, type RateLimiter } from '../delivery/rate-limiter.ts';
import type { SessionRegistry } from '../delivery/sessions.ts';
import type { DeviceIdentity } from '../devices/device-identity.ts';
import { deviceInScope } from '../devices/device-in-scope.ts';
import type { EventBus } from '../events/event-bus.ts';
import type { ProjectSettingsService } from '../projects/project-settings.service.ts';
import { checkModels, parseAttributes, type CurrentValuesService } from '../telemetry/current-values.service.ts';
import type { HistoryService } from '../telemetry/history.service.ts';

/** `conn_type` of device types (device-protocol.md §8): a gateway, and the devices it speaks for. */
export const CONN_TYPE_GATEWAY = '3';
export const CONN_TYPE_SUB_DEVICE = '2';

/**
 * A sub-device's address within its gateway: 1–64 characters of letters, digits and `_ . : -`
 * (Modbus unit ids, MAC addresses, serial numbers, "rs485-3"). No spaces, slashes or MQTT
 * wildcards, so an address is safe in logs, topics and JSON keys alike.
 */
export const SUB_ADDRESS = /^[A-Za-z0-9_.:-]{1,64}$/;
export const SUB_ADDRESS_RULE = '1–64 characters: letters, digits, "_", ".", ":", "-"';

/** Most sub-devices one `gateway/attributes` message may report for. */
export const MAX_GATEWAY_REPORT_DEVICES = 100;

export interface GatewaysServiceDeps {
  repo: GatewaysRepository;
  devices: Pick<DevicesRepository, 'get'>;
  /** Whether a sub-device is online: its session on any node (docs/cluster.md). */
  sessions: Pick<SessionRegistry, 'locate'>;
  /** Told of every attach and detach, so live gateway connections drop what they cached. */
  bus: Pick<EventBus, 'emit'>;
  /** The sub-devices' reports of a gateway (`reportSubDevices`): checked, rate-limited and ingested as a direct device's. */
  currentValues: Pick<CurrentValuesService, 'report'>;
  history: Pick<HistoryService, 'modelLookup'>;
  projectSettings: Pick<ProjectSettingsService, 'deviceRateLimit'>;
  rateLimiter: Pick<RateLimiter, 'reserve'>;
  clock?: () => number;
}

export interface AttachInput {
  device: string;
  address: string;
}

/**
 * Gateways and sub-devices (device-protocol.md §8): the project API attaches devices of a
 * sub-device type ("2") to a device of a gateway type ("3") at an address unique within the
 * gateway; the broker resolves a gateway's addresses to its own sub-devices only.
 */
export function createGatewaysService({
  repo,
  devices,
  sessions,
  bus,
  currentValues,
  history,
  projectSettings,
  rateLimiter,
  clock = Date.now,
}: GatewaysServiceDeps) {
  async function mustBeGateway(scope: Scope, gatewayId: string) {
    const gateway = await deviceInScope(devices, scope, gatewayId);
    if (!gateway.typeId || gateway.typeConnType !== CONN_TYPE_GATEWAY) {
      throw new BadRequest('The device is not a gateway: its device type must have conn_type "3"', [
        { path: 'id', message: 'not a gateway' },
      ]);
    }
    return gateway;
  }

  return {
    /**
     * Attaches a device of a sub-device type to the gateway at `address`. Attaching it again to the
     * same gateway changes its address; a device attached to another gateway must be detached first.
     */
    async attach(scope: Scope, gatewayId: string, input: AttachInput) {
      if (!SUB_ADDRESS.test(input.address))
        throw new BadRequest(`Invalid address: ${SUB_ADDRESS_RULE}`, [{ path: 'address', message: SUB_ADDRESS_RULE }]);
      const gateway = await mustBeGateway(scope, gatewayId);
      const sub = await deviceInScope(devices, scope, input.device);
      if (!sub.typeId || sub.typeConnType !== CONN_TYPE_SUB_DEVICE) {
        throw new BadRequest('The device is not a gateway sub-device: its device type must have conn_type "2"', [
          { path: 'device', message: 'not a sub-device' },
        ]);
      }
      const already = () =>
        new Conflict(`The device is attached to another gateway (${sub.gatewayId ?? 'another one'}); detach it first`, [
          { path: 'device', message: 'attached to another gateway' },
        ]);
      if (sub.gatewayId && sub.gatewayId !== gateway.id) throw already();
      const view = { id: sub.id, name: sub.name, gateway_id: gateway.id, address: input.address };
      if (sub.gatewayId === gateway.id && sub.subAddress === input.address) return view;
      let attached: boolean;
      try {
        attached = await repo.attach(scope.projectId, gateway.id, sub.id, input.address, clock());
      } catch (err) {
        if (err instanceof Duplicate && err.what === 'gateway_address') {
          throw new Conflict(`Address ${input.address} is already used by another sub-device of this gateway`, [
            { path: 'address', message: 'already used' },
          ]);
        }
        throw err;
      }
      // Attached to another gateway between the read and the update.
      if (!attached) throw already();
      bus.emit('device.gateway_changed', {
        projectId: scope.projectId,
        deviceId: sub.id,
        gatewayId: gateway.id,
        previousGatewayId: sub.gatewayId ?? null,
      });
      return view;
    },

    /** Detaches the devices from the gateway; ids that are not attached to it are ignored. */
    async detach(scope: Scope, gatewayId: string, deviceIds: string[]) {
      const gateway = await deviceInScope(devices, scope, gatewayId);
      const detached = await repo.detach(scope.projectId, gateway.id, [...new Set(deviceIds)], clock());
      for (const deviceId of detached) {
        bus.emit('device.gateway_changed', {
          projectId: scope.projectId,
          deviceId,
          gatewayId: null,
          previousGatewayId: gateway.id,
        });
      }
      return { detached };
    },

    /** The gateway's sub-devices by address, with their live online state. */
    async list(scope: Scope, gatewayId: string, page: number, pageRecords: number) {
      const gateway = await deviceInScope(devices, scope, gatewayId);
      const offset = (page - 1) * pageRecords;
      const rows = await repo.page(scope.projectId, gateway.id, pageRecords, offset);
      const total =
        rows.length > 0 && rows.length < pageRecords
          ? offset + rows.length
          : await repo.total(scope.projectId, gateway.id);
      // Live: the session, on whichever node. When the cluster cannot be asked (NATS down), the list still
      // answers, with the online state presence last wrote (docs/cluster.md §5).
      const online = await Promise.all(
        rows.map((r) =>
          sessions.locate(r.id).then(
            (s) => s !== undefined,
            () => r.online,
          ),
        ),
      );
      return {
        items: rows.map((r, i) => ({
          id: r.id,
          name: r.name,
          type: r.typeId ?? '',
          address: r.address,
          online: online[i] === true,
        })),
        total,
        page_total: Math.ceil(total / pageRecords),
      };
    },

    /**
     * The sub-device at `address` of this gateway, or undefined: a gateway speaks only for its own
     * sub-devices (the look-up is within the gateway and its project).
     */
    async subDevice(
      gateway: Pick<DeviceIdentity, 'projectId' | 'deviceId'>,
      address: string,
    ): Promise<DeviceIdentity | undefined> {
      if (!SUB_ADDRESS.test(address)) return undefined;
      const row = await repo.subByAddress(gateway.projectId, gateway.deviceId, address);
      return row && { ...row, connType: row.connType ?? '1' };
    },

    /**
     * `gateway/attributes` `{"<addr>":{…},…}` (device-protocol.md §8): all or nothing. Every address is
     * resolved among the gateway's own sub-devices (`resolve`, the connection's cached `subDevice`) and
     * every value checked (attribute models included) before anything is stored; then each sub-device's
     * report counts against its own rate and its project's budget, as a direct device's would (the
     * message waits for the tokens of the slowest, or is refused), and all are submitted with one time.
     */
    async reportSubDevices(
      gateway: Pick<DeviceIdentity, 'projectId' | 'deviceId'>,
      body: unknown,
      resolve: (address: string) => Promise<DeviceIdentity | undefined>,
    ): Promise<{ ts: number }> {
      if (body === null || typeof body !== 'object' || Array.isArray(body))
        throw new BadRequest('payload must be {"<addr>":{…attributes},…}');
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
        // Values whose type contradicts the sub-device type's attribute model are refused here.
        await checkModels(history.modelLookup, identities[i]!, values, `${address}.`);
      }
      const rate = await projectSettings.deviceRateLimit(gateway.projectId);
      let wait = 0;
      for (const identity of identities) {
        const admission = rateLimiter.reserve(identity!.projectId, identity!.deviceId, rate);
        if (!admission.ok)
          throw new RateExceeded(`sub-device message rate exceeded`, Math.ceil(admission.retryMs / 1000));
        wait = Math.max(wait, admission.delayMs);
      }
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      // One time for the whole message; submitted together, the reports share an ingest batch.
      const ts = clock();
      await Promise.all(entries.map(([, attributes], i) => currentValues.report(identities[i]!, attributes, ts)));
      return { ts };
    },
  };
}
export type GatewaysService = ReturnType<typeof createGatewaysService>;
