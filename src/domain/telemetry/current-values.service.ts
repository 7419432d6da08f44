import { deviceInScope } from '../devices/device-in-scope.ts';
import { DAY_MS } from '../../lib/time.ts';
import { unstorableJson } from '../../lib/unstorable-text.ts';
import type {
  AttrDataType,
  AttributeValueInput,
  AttributeValuesRepository,
  AttrType,
} from '../../db/repositories/attribute-values.repository.ts';
import type { DevicesRepository } from '../../db/repositories/devices.repository.ts';
import { BadRequest, StateConflict, type FieldError } from '../../errors.ts';
import type { Scope } from '../auth/principal.ts';
import { sendOrFail, type SessionRegistry } from '../delivery/sessions.ts';
import type { DeviceIdentity } from '../devices/device-identity.ts';
import type { PresenceService } from '../devices/presence.service.ts';
import type { EventBus } from '../events/event-bus.ts';
import type { Ingest } from './ingest.ts';

/** `__proto__` would pass the pattern and then vanish from every object it is read into. */
export const ATTRIBUTE_IDENTIFIER = /^(?!__proto__$)[A-Za-z_][A-Za-z0-9_]{0,63}$/;
export const MAX_ATTRIBUTES = 200;
export const MAX_VALUE_BYTES = 16 * 1024;
export const MAX_ATTRIBUTES_BYTES = 64 * 1024;

export interface CurrentValuesDeps {
  repo: Pick<AttributeValuesRepository, 'list'>;
  ingest: Pick<Ingest, 'submit'>;
  models?: ModelLookup;
  /** The oldest time a report may carry for a project (its history retention), in ms. */
  retention?: (projectId: string) => Promise<number>;
  devices: Pick<DevicesRepository, 'get'>;
  sessions: Pick<SessionRegistry, 'locate'>;
  presence: Pick<PresenceService, 'touch'>;
  bus: Pick<EventBus, 'emit'>;
  clock?: () => number;
  /**
   * Whether a report with this receipt was stored by a batch whose acknowledgements may not have reached
   * their devices, using the receipt up (device-protocol.md §3.3); unset = never.
   */
  takeReceipt?: (receipt: string) => Promise<boolean>;
}

function dataTypeOf(value: unknown): AttrDataType | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? 'number' : undefined;
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'string') return 'string';
  if (Array.isArray(value)) return 'array';
  if (value !== null && typeof value === 'object') return 'object';
  return undefined;
}

function invalid(errors: FieldError[]): never {
  const first = errors[0];
  throw new BadRequest(
    first ? `Invalid attributes: ${first.path || 'body'}: ${first.message}` : 'Invalid attributes',
    errors,
  );
}

/**
 * Checks one attribute message (device-protocol.md §3): a JSON object of 1–200 attributes whose
 * identifiers and values the store can hold, within the size limits. The same rules hold for
 * reports, pushes and cloud attributes, over MQTT and HTTP alike.
 */
export function parseAttributes(input: unknown): AttributeValueInput[] {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    invalid([{ path: '', message: 'expected a JSON object of attribute values' }]);
  }
  const entries = Object.entries(input);
  if (!entries.length) invalid([{ path: '', message: 'give at least one attribute' }]);
  if (entries.length > MAX_ATTRIBUTES)
    invalid([{ path: '', message: `at most ${MAX_ATTRIBUTES} attributes per message` }]);
  const errors: FieldError[] = [];
  const values: AttributeValueInput[] = [];
  let total = 0;
  for (const [identifier, value] of entries) {
    if (!ATTRIBUTE_IDENTIFIER.test(identifier)) {
      errors.push({ path: identifier, message: 'identifier must match ^[A-Za-z_][A-Za-z0-9_]{0,63}$' });
      continue;
    }
    const dataType = dataTypeOf(value);
    if (!dataType) {
      errors.push({
        path: identifier,
        message: 'value must be a finite number, a boolean, a string, an object or an array',
      });
      continue;
    }
    // Numbers and booleans are always storable and small (at most 24 bytes as JSON).
    let bytes = 24;
    if (dataType !== 'number' && dataType !== 'boolean') {
      // Checked before JSON.stringify, which overflows the stack on deeply nested values.
      const problem = unstorableJson(value);
      if (problem) {
        errors.push({ path: identifier, message: problem });
        continue;
      }
      bytes = Buffer.byteLength(JSON.stringify(value));
    }
    total += bytes + identifier.length;
    if (bytes > MAX_VALUE_BYTES)
      errors.push({ path: identifier, message: `value is larger than ${MAX_VALUE_BYTES} bytes` });
    else values.push({ identifier, value, dataType });
  }
  if (errors.length) invalid(errors);
  if (total > MAX_ATTRIBUTES_BYTES)
    invalid([{ path: '', message: `attributes are larger than ${MAX_ATTRIBUTES_BYTES} bytes in all` }]);
  return values;
}

/** `{identifier: value}` of parsed attributes, as events and pushes carry them. */
const objectOf = (values: AttributeValueInput[]) => Object.fromEntries(values.map((v) => [v.identifier, v.value]));

type ModelsByIdentifier = ReadonlyMap<string, { dataType: string }>;
/**
 * The attribute models of a device type by identifier (what a value is checked against); `cached`
 * answers them without waiting when they are loaded.
 */
export type ModelLookup = ((projectId: string, typeId: string) => Promise<ModelsByIdentifier>) & {
  cached?(projectId: string, typeId: string): ModelsByIdentifier | undefined;
};

function checkAgainst(byIdentifier: ModelsByIdentifier, values: AttributeValueInput[], pathPrefix: string) {
  if (!byIdentifier.size) return;
  const errors: FieldError[] = [];
  for (const v of values) {
    const model = byIdentifier.get(v.identifier);
    if (model && model.dataType !== v.dataType)
      errors.push({
        path: pathPrefix + v.identifier,
        message: `expected ${model.dataType} (attribute model), got ${v.dataType}`,
      });
  }
  if (errors.length) invalid(errors);
}

/**
 * Refuses values whose type contradicts the device type's attribute model (device-protocol.md §3.1): the whole
 * message is refused, nothing of it is stored. Identifiers without a model are accepted. Answers
 * synchronously (undefined) when there is nothing to check or the models are cached.
 */
export function checkModels(
  models: ModelLookup | undefined,
  identity: Pick<DeviceIdentity, 'projectId' | 'typeId'>,
  values: AttributeValueInput[],
  /** Put before each identifier in error paths (a gateway names the sub-device's address). */
  pathPrefix = '',
): Promise<void> | undefined {
  if (!models || !identity.typeId) return undefined;
  const cached = models.cached?.(identity.projectId, identity.typeId);
  if (cached) return void checkAgainst(cached, values, pathPrefix);
  return models(identity.projectId, identity.typeId).then((byIdentifier) =>
    checkAgainst(byIdentifier, values, pathPrefix),
  );
}

/**
 * Current attribute values of devices: reported by the device, pushed to it, or cloud attributes
 * (http-api.md §3 "Device communication"). `report` is the single entry of device reports, whatever
 * the transport: values go through the ingest pipeline (history and current values, group commit).
 */
export function createCurrentValuesService({
  repo,
  devices,
  sessions,
  presence,
  bus,
  ingest,
  models,
  retention,
  clock = Date.now,
  takeReceipt,
}: CurrentValuesDeps) {
  /** `attributes`: the values as an object, when the caller has it already (the checked input). */
  async function store(
    projectId: string,
    deviceId: string,
    values: AttributeValueInput[],
    attrType: AttrType,
    ts: number,
    attributes = objectOf(values),
    receipt?: string,
  ) {
    await ingest.submit(
      values.map((v) => ({
        projectId,
        deviceId,
        identifier: v.identifier,
        ts,
        value: v.value,
        dataType: v.dataType,
        attrType,
        history: attrType === 'report',
      })),
      // Pushes and cloud attributes come from an HTTP caller who waits: not held for a batch to fill.
      { now: attrType !== 'report', receipt },
    );
    bus.emit('device.attributes', { projectId, deviceId, attributes, attrType, ts });
  }

  const mustExist = (scope: Scope, deviceId: string) => deviceInScope(devices, scope, deviceId);

  /**
   * Checks a report (or each entry of a series) before anything of it is stored. Reports from the
   * last day (retention is whole days) of devices whose type's models are cached (or untyped) need no
   * look-up: they cost no promise.
   */
  function checkReport(
    identity: DeviceIdentity,
    attributes: unknown,
    ts: number,
  ): AttributeValueInput[] | Promise<AttributeValueInput[]> {
    const values = parseAttributes(attributes);
    const modelsLoading = checkModels(models, identity, values);
    const old = retention !== undefined && ts < clock() - DAY_MS;
    return modelsLoading || old ? lookedUp(identity, values, ts, modelsLoading, old) : values;
  }

  async function lookedUp(
    identity: DeviceIdentity,
    values: AttributeValueInput[],
    ts: number,
    modelsLoading: Promise<void> | undefined,
    old: boolean,
  ): Promise<AttributeValueInput[]> {
    await modelsLoading;
    if (old && retention) {
      const oldest = await retention(identity.projectId);
      if (ts < oldest)
        throw new BadRequest(`ts ${ts} is older than the project's history retention`, [
          { path: 'ts', message: 'older than the history retention' },
        ]);
    }
    return values;
  }

  return {
    /**
     * A report from the device; stored (history and current values) when the promise resolves: MQTT QoS 1 acks
     * after it. `receipt`: the key of a QoS 1 message, recorded with its batch (device-protocol.md §3.3).
     */
    async report(
      identity: DeviceIdentity,
      attributes: unknown,
      ts = clock(),
      receipt?: string,
    ): Promise<{ ts: number }> {
      const checked = checkReport(identity, attributes, ts);
      const values = Array.isArray(checked) ? checked : await checked;
      // parseAttributes accepted the object whole: each of its entries is one of `values`.
      await store(
        identity.projectId,
        identity.deviceId,
        values,
        'report',
        ts,
        attributes as Record<string, unknown>,
        receipt,
      );
      presence.touch(identity.deviceId, 'attributes', ts);
      return { ts };
    },

    /**
     * Back-dated reports (`attributes/series`): every entry is checked before any is stored, then all
     * are stored at their own timestamps in one submission (one batch, all or nothing).
     */
    async reportSeries(
      identity: DeviceIdentity,
      entries: Array<{ ts: number; attributes: unknown }>,
      receipt?: string,
    ): Promise<void> {
      const checked: Array<{ ts: number; values: AttributeValueInput[] }> = [];
      for (const [i, e] of entries.entries()) {
        try {
          checked.push({ ts: e.ts, values: await checkReport(identity, e.attributes, e.ts) });
        } catch (err) {
          if (err instanceof BadRequest) throw new BadRequest(`entry ${i}: ${err.message}`, err.errors);
          throw err;
        }
      }
      const { projectId, deviceId } = identity;
      await ingest.submit(
        checked.flatMap(({ ts, values }) =>
          values.map((v) => ({
            projectId,
            deviceId,
            identifier: v.identifier,
            ts,
            value: v.value,
            dataType: v.dataType,
            attrType: 'report' as const,
            history: true,
          })),
        ),
        { receipt },
      );
      for (const { ts, values } of checked) {
        bus.emit('device.attributes', { projectId, deviceId, attributes: objectOf(values), attrType: 'report', ts });
        presence.touch(deviceId, 'attributes', ts);
      }
    },

    /**
     * Whether a resent report (MQTT DUP) was stored already: its receipt is among those of batches whose
     * acknowledgements may not have reached their devices (device-protocol.md §3.3). Then it is acknowledged
     * without being stored again; the device's activity is its time (the node that stored it may have died before
     * writing that).
     */
    async reportStored(identity: DeviceIdentity, receipt: string): Promise<boolean> {
      if (!takeReceipt || !(await takeReceipt(receipt))) return false;
      presence.touch(identity.deviceId, 'attributes', clock());
      return true;
    },

    /** Current values (reported, pushed and cloud), all or only `keys`: `attributes/get` and HTTP reads. */
    async get(projectId: string, deviceId: string, keys?: string[]): Promise<Record<string, unknown>> {
      const rows = await repo.list(projectId, deviceId, keys);
      return Object.fromEntries(rows.map((r) => [r.identifier, r.value]));
    },

    /** Sends attributes to the online device on `attributes/push` and records them as its current values. */
    async push(scope: Scope, deviceId: string, attributes: unknown): Promise<void> {
      const values = parseAttributes(attributes);
      const device = await mustExist(scope, deviceId);
      await checkModels(models, { projectId: scope.projectId, typeId: device.typeId }, values);
      const session = await sessions.locate(deviceId);
      if (!session || session.projectId !== scope.projectId) throw new StateConflict('Device is offline');
      // Stamped when sent: a device that applies the push and reports the value back reports it
      // later, and its report must stay the newer current value.
      const ts = clock();
      await sendOrFail(session, 'attributes/push', Buffer.from(JSON.stringify(objectOf(values))));
      await store(scope.projectId, deviceId, values, 'push', ts);
    },

    /** Cloud attributes: stored only, read by the device with `attributes/get`; it may be offline. */
    async setCloud(scope: Scope, deviceId: string, attributes: unknown): Promise<void> {
      const values = parseAttributes(attributes);
      const device = await mustExist(scope, deviceId);
      await checkModels(models, { projectId: scope.projectId, typeId: device.typeId }, values);
      await store(scope.projectId, deviceId, values, 'cloud', clock());
    },
  };
}
export type CurrentValuesService = ReturnType<typeof createCurrentValuesService>;
