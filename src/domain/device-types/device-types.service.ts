import { Duplicate, MissingReference } from '../../db/errors.ts';
import type { DeviceTypesRepository } from '../../db/repositories/device-types.repository.ts';
import { NotFound, StateConflict } from '../../errors.ts';
import { newId, randomToken } from '../../lib/ids.ts';
import type { Scope } from '../auth/principal.ts';
import { createAttributeModels } from './attribute-models.ts';
import { createExtendInfoDefinitions } from './extend-info-definitions.ts';
import { createStreamDefinitions } from './stream-definitions.ts';
import type { TypePartsContext } from './type-parts.ts';
import { typeListView, typeView } from './views.ts';

export {
  ATTRIBUTE_DATA_TYPES,
  attributeDataOptions,
  type AttributeDataType,
  type AttributeModelInput,
  type AttributeModelPatch,
} from './attribute-models.ts';
export { type ExtendInfoInput, type ExtendInfoPatch } from './extend-info-definitions.ts';
export { STREAM_FORMATS, type DataStreamInput, type DataStreamPatch, type StreamFormat } from './stream-definitions.ts';

/** "1" direct device, "2" gateway sub-device, "3" gateway (device-protocol.md §4, §8). */
export const CONN_TYPES = ['1', '2', '3'] as const;
export const CONN_PROTOCOLS = ['mqtt', 'tcp', 'http'] as const;
export type ConnType = (typeof CONN_TYPES)[number];
export type ConnProtocol = (typeof CONN_PROTOCOLS)[number];

export interface DeviceTypeInput {
  name: string;
  descr?: string;
  tags?: Record<string, string>;
  conn_type?: ConnType;
  conn_protocol?: ConnProtocol;
  allow_auto_create?: boolean;
  /** Raw TCP (device-protocol.md §6): the keep-alive string of the type's devices; null clears it. */
  tcp_heartbeat?: string | null;
  /** Raw TCP: bytes within this many ms form one message; null = the server's default. */
  tcp_frame_gap_ms?: number | null;
}

export interface DeviceTypesDeps {
  types: DeviceTypesRepository;
  clock?: () => number;
  /**
   * Called after a type, its data streams or its attribute models changed: stream checks, attribute models
   * and device logins cache them (the composition makes it `device_type.changed`, heard on every node).
   */
  onTypeChanged?: (projectId: string, typeId: string) => void;
}

/**
 * Device types (http-api.md §3, §4) with their parts: attribute models (attribute-models.ts), data
 * stream definitions (stream-definitions.ts) and extend-info definitions (extend-info-definitions.ts).
 */
export function createDeviceTypesService({ types, clock = Date.now, onTypeChanged = () => {} }: DeviceTypesDeps) {
  async function mustGetType(projectId: string, id: string) {
    const row = await types.byId(projectId, id);
    if (!row) throw new NotFound('Device type');
    return row;
  }

  async function read(scope: Scope, id: string) {
    const row = await types.get(scope, id);
    if (!row) throw new NotFound('Device type');
    return typeView(row, scope);
  }

  /** A random type key; the unique index settles the (astronomically unlikely) collision by drawing again. */
  async function withFreshTypeKey(write: (typeKey: string) => Promise<void>): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      const typeKey = randomToken(24);
      try {
        await write(typeKey);
        return typeKey;
      } catch (err) {
        if (attempt >= 2 || !(err instanceof Duplicate && err.what === 'type_key')) throw err;
      }
    }
  }

  async function inUse(projectId: string, id: string, n: number): Promise<never> {
    const count = n || (await types.deviceCount(projectId, id));
    throw new StateConflict(`Device type is used by ${count} device${count === 1 ? '' : 's'}`);
  }

  const parts: TypePartsContext = { types, clock, onTypeChanged, mustGetType };

  return {
    async list(scope: Scope) {
      const rows = await types.list(scope);
      return { items: rows.map((t) => typeListView(t, scope)) };
    },

    get: read,

    async create(scope: Scope, input: DeviceTypeInput) {
      const now = clock();
      const id = newId(now);
      const typeKey = await withFreshTypeKey((key) =>
        types.insert({
          id,
          projectId: scope.projectId,
          name: input.name,
          descr: input.descr ?? '',
          tags: input.tags ?? {},
          typeKey: key,
          connType: input.conn_type ?? '1',
          connProtocol: input.conn_protocol ?? 'mqtt',
          allowAutoCreate: input.allow_auto_create ?? false,
          tcpHeartbeat: input.tcp_heartbeat ?? null,
          tcpFrameGapMs: input.tcp_frame_gap_ms ?? null,
          createTime: now,
          updateTime: now,
        }),
      );
      return { id, name: input.name, type_key: typeKey };
    },

    async update(scope: Scope, id: string, patch: Partial<DeviceTypeInput>) {
      const updated = await types.update(scope.projectId, id, {
        ...(patch.name !== undefined ? { name: patch.name } : {}),
        ...(patch.descr !== undefined ? { descr: patch.descr } : {}),
        ...(patch.tags !== undefined ? { tags: patch.tags } : {}),
        ...(patch.conn_type !== undefined ? { connType: patch.conn_type } : {}),
        ...(patch.conn_protocol !== undefined ? { connProtocol: patch.conn_protocol } : {}),
        ...(patch.allow_auto_create !== undefined ? { allowAutoCreate: patch.allow_auto_create } : {}),
        ...(patch.tcp_heartbeat !== undefined ? { tcpHeartbeat: patch.tcp_heartbeat } : {}),
        ...(patch.tcp_frame_gap_ms !== undefined ? { tcpFrameGapMs: patch.tcp_frame_gap_ms } : {}),
        updateTime: clock(),
      });
      if (!updated) throw new NotFound('Device type');
      onTypeChanged(scope.projectId, id);
      return read(scope, id);
    },

    /** Refused while devices use the type (the foreign key also refuses, should one be created meanwhile). */
    async delete(scope: Scope, id: string) {
      try {
        await types.inTransaction(async (r) => {
          if (!(await r.lock(scope.projectId, id))) throw new NotFound('Device type');
          const n = await r.deviceCount(scope.projectId, id);
          if (n > 0) await inUse(scope.projectId, id, n);
          await r.delete(scope.projectId, id);
        });
        onTypeChanged(scope.projectId, id);
      } catch (err) {
        if (err instanceof MissingReference) await inUse(scope.projectId, id, 0);
        throw err;
      }
    },

    /** A new type key; the old one stops working at once (device-protocol.md §4). */
    async resetTypeKey(scope: Scope, id: string) {
      await mustGetType(scope.projectId, id);
      const typeKey = await withFreshTypeKey(async (key) => {
        if (!(await types.update(scope.projectId, id, { typeKey: key, updateTime: clock() })))
          throw new NotFound('Device type');
      });
      return { type_key: typeKey };
    },

    ...createAttributeModels(parts),
    ...createStreamDefinitions(parts),
    ...createExtendInfoDefinitions(parts),
  };
}
export type DeviceTypesService = ReturnType<typeof createDeviceTypesService>;
