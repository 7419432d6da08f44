import type { CertificateRepository } from '../../db/repositories/certificate.repository.ts';
import { AppError, Conflict, Forbidden, NotFound, Unauthorized } from '../../errors.ts';
import type { EventBus } from '../events/event-bus.ts';
import type { DevicesService } from './devices.service.ts';

export interface CertificateDeps {
  repo: CertificateRepository;
  /** Auto-created devices go through the same rules as `POST /api/v1/device` (quota, unique device_key). */
  devices: Pick<DevicesService, 'create'>;
  clock?: () => number;
  /** A device bound to a customer on creation is told (`customer.devices_changed`). */
  bus?: Pick<EventBus, 'emit'>;
}

export interface CertificateOptions {
  /**
   * Called when a device is about to be created (not for an existing device): throws to refuse, e.g. over the
   * project's allowance of auto-created devices (device-access.routes.ts).
   */
  beforeCreate?: (projectId: string) => void;
}

export interface CertificateRequest {
  device_key: string;
  type_key?: string | undefined;
  customer_id?: string | undefined;
}

/** device-protocol.md §4: conn_type "1" direct, "2" gateway sub-device, "3" gateway. */
const KIND: Record<string, string> = {
  '1': 'a directly connected device',
  '2': 'a gateway sub-device',
  '3': 'a gateway',
};
const KINDS: Record<string, string> = {
  '1': 'directly connected devices',
  '2': 'gateway sub-devices',
  '3': 'gateways',
};

/**
 * Device certificates (device-protocol.md §4): a device that knows only the project key and its own
 * hardware id (device key) obtains its access token, and may be created on the spot when its type
 * allows it. Failures are AppErrors whose message is the reason the device protocol answers.
 */
export function createCertificateService({ repo, devices, clock = Date.now, bus }: CertificateDeps) {
  async function existing(projectId: string, deviceKey: string, typeKey?: string) {
    const row = await repo.deviceByKey(projectId, deviceKey);
    if (!row) return undefined;
    if (row.disabled) throw new Forbidden('Device is disabled');
    if (typeKey) await sameKind(projectId, deviceKey, row, typeKey);
    return { id: row.id, name: row.name, access_token: row.accessToken, conn_type: row.connType ?? '1' };
  }

  /**
   * An existing device is answered whatever `type_key` says (an operator may have moved it to another type), except
   * when that type is for another kind of device (direct, sub-device, gateway): its certificate would only fail later
   * on the topics of its kind, so the answer says what is wrong instead (errcode 409).
   */
  async function sameKind(
    projectId: string,
    deviceKey: string,
    row: { typeId: string | null; typeName: string | null; typeKey: string | null; connType: string | null },
    typeKey: string,
  ) {
    // The device's own type (the usual request of a device that powers on again): nothing to look up.
    if (row.typeKey === typeKey) return;
    const type = await repo.typeByKey(projectId, typeKey);
    if (!type || type.id === row.typeId) return;
    const has = row.connType ?? '1';
    if (type.connType === has) return;
    const typeOf = row.typeName === null ? 'without a type' : `of type "${row.typeName}"`;
    throw new Conflict(
      `Device key "${deviceKey}" is already used by ${KIND[has] ?? `a device of conn_type ${has}`} ${typeOf}, ` +
        `but type_key names type "${type.name}", which is for ${KINDS[type.connType] ?? `conn_type ${type.connType}`}: ` +
        "use another device_key, or change the device's type",
    );
  }

  return {
    async request(projectKey: string | undefined, input: CertificateRequest, options: CertificateOptions = {}) {
      if (!projectKey) throw new Unauthorized('Missing Project-Key header');
      const projectId = await repo.projectIdByKey(projectKey);
      if (!projectId) throw new Unauthorized('Unknown project key');
      const found = await existing(projectId, input.device_key, input.type_key);
      if (found) return found;

      if (!input.type_key)
        throw new AppError(404, 'No device has this device_key, and no type_key was given to create one');
      const type = await repo.typeByKey(projectId, input.type_key);
      if (!type) throw new NotFound('Device type');
      if (!type.allowAutoCreate) throw new Forbidden('The device type does not allow auto-creating devices');
      if (input.customer_id && !(await repo.customerExists(projectId, input.customer_id)))
        throw new NotFound('Customer');
      options.beforeCreate?.(projectId);

      let id: string;
      try {
        ({ id } = await devices.create(
          { projectId },
          { name: input.device_key, type: type.id, device_key: input.device_key },
        ));
      } catch (err) {
        // Two requests for the same new key at once: one creates, the other answers with its device.
        if (err instanceof AppError && err.errcode === 409) {
          const raced = await existing(projectId, input.device_key);
          if (raced) return raced;
        }
        throw err;
      }
      if (input.customer_id) {
        await repo.bindCustomer(projectId, input.customer_id, id, clock());
        bus?.emit('customer.devices_changed', {
          projectId,
          customerId: input.customer_id,
          deviceIds: [id],
          bound: true,
        });
      }
      const created = await existing(projectId, input.device_key);
      if (!created) throw new NotFound('Device');
      return created;
    },
  };
}
export type CertificateService = ReturnType<typeof createCertificateService>;
