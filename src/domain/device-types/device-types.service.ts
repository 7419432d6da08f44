import { z } from 'zod';
import type { Db, Tx } from '../../db/client.ts';
import { foreignKeyViolation, uniqueViolation } from '../../db/errors.ts';
import {
  createDeviceTypesRepository,
  type AttributeModelRow,
  type DataStreamRow,
  type DeviceTypeWithCount,
  type ExtendInfoDefRow,
} from '../../db/repositories/device-types.repository.ts';
import { BadRequest, Conflict, NotFound, StateConflict, type FieldError } from '../../errors.ts';
import { newId, randomToken } from '../../lib/ids.ts';
import type { Scope } from '../auth/principal.ts';
import {
  customInfoOptions,
  STANDARD_INFO_TYPES,
  STANDARD_INFOS,
  standardInfoOptions,
  type CustomInfoType,
} from './extend-info-types.ts';

/** "1" direct device, "2" gateway sub-device, "3" gateway (device-protocol.md §4, §8). */
export const CONN_TYPES = ['1', '2', '3'] as const;
export const CONN_PROTOCOLS = ['mqtt', 'tcp', 'http'] as const;
export type ConnType = (typeof CONN_TYPES)[number];
export type ConnProtocol = (typeof CONN_PROTOCOLS)[number];

export const ATTRIBUTE_DATA_TYPES = ['number', 'boolean', 'string', 'object', 'array'] as const;
export type AttributeDataType = (typeof ATTRIBUTE_DATA_TYPES)[number];
export const STREAM_FORMATS = ['hex', 'text', 'json'] as const;
export type StreamFormat = (typeof STREAM_FORMATS)[number];

const OptionText = z.string().max(64);

/** What `data_options` of an attribute model may hold, per data type (http-api.md §4). */
export const attributeDataOptions = {
  number: z
    .object({
      min: z.number().optional(),
      max: z.number().optional(),
      step: z.number().positive().optional(),
      precision: z.number().int().min(0).max(15).optional(),
    })
    .strict()
    .refine((o) => o.min === undefined || o.max === undefined || o.min <= o.max, 'min must not exceed max'),
  string: z
    .object({
      max_length: z.number().int().min(1).max(65_536).optional(),
      choices: z.array(z.string().max(256)).min(1).max(100).optional(),
    })
    .strict()
    .refine(
      (o) => o.max_length === undefined || !o.choices?.some((c) => c.length > o.max_length!),
      'choices must fit in max_length',
    ),
  boolean: z.object({ true_text: OptionText.optional(), false_text: OptionText.optional() }).strict(),
  object: z.object({}).strict(),
  array: z.object({}).strict(),
} satisfies Record<AttributeDataType, z.ZodType>;

/** Validates options against the schema of their kind; failures name the field under `field`. */
function parseOptions(schema: z.ZodType, value: unknown, field: string): Record<string, unknown> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data as Record<string, unknown>;
  const errors: FieldError[] = parsed.error.issues.map((i) => ({
    path: [field, ...i.path.map(String)].join('.'),
    message: i.message,
  }));
  throw new BadRequest(`Invalid input: ${errors[0]?.path ?? field}: ${errors[0]?.message ?? 'invalid'}`, errors);
}

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

export interface AttributeModelInput {
  identifier: string;
  name: string;
  data_type: AttributeDataType;
  unit?: string;
  data_options?: Record<string, unknown>;
}
export type AttributeModelPatch = Partial<Omit<AttributeModelInput, 'identifier'>>;

export interface DataStreamInput {
  identifier: string;
  name?: string;
  format: StreamFormat;
  tcp_bound?: boolean;
  map_to_attributes?: boolean;
}
export type DataStreamPatch = Partial<Omit<DataStreamInput, 'identifier'>>;

export interface ExtendInfoInput {
  info_type: CustomInfoType;
  name: string;
  descr?: string;
  enabled?: boolean;
  options?: Record<string, unknown>;
}
export type ExtendInfoPatch = Partial<Omit<ExtendInfoInput, 'info_type'>>;

/** The list item of http-api.md §3 `GET /api/v1/device_types`, plus the §4 fields. */
function typeListView(t: DeviceTypeWithCount, scope: Scope) {
  return {
    id: t.id,
    name: t.name,
    descr: t.descr,
    tags: t.tags,
    create_time: t.createTime,
    device_count: t.deviceCount,
    conn_protocol: t.connProtocol,
    conn_type: t.connType,
    type_key: typeKeyFor(t.typeKey, scope),
    allow_auto_create: t.allowAutoCreate,
  };
}

function typeView(t: DeviceTypeWithCount, scope: Scope) {
  return {
    id: t.id,
    name: t.name,
    descr: t.descr,
    tags: t.tags,
    type_key: typeKeyFor(t.typeKey, scope),
    conn_type: t.connType,
    conn_protocol: t.connProtocol,
    allow_auto_create: t.allowAutoCreate,
    tcp_heartbeat: t.tcpHeartbeat,
    tcp_frame_gap_ms: t.tcpFrameGapMs,
    create_time: t.createTime,
    update_time: t.updateTime,
    device_count: t.deviceCount,
  };
}

/**
 * The type key creates devices on a certificate request (device-protocol.md §4): a provisioning
 * credential, so customers (who may read types) are not shown it.
 */
const typeKeyFor = (key: string, scope: Scope) => (scope.customerId ? '' : key);

function attributeView(a: AttributeModelRow) {
  return {
    id: a.id,
    identifier: a.identifier,
    name: a.name,
    data_type: a.dataType,
    unit: a.unit,
    data_options: a.options,
    create_time: a.createTime,
    update_time: a.updateTime,
  };
}

function streamView(s: DataStreamRow) {
  return {
    id: s.id,
    identifier: s.identifier,
    name: s.name,
    format: s.format,
    tcp_bound: s.tcpBound,
    map_to_attributes: s.mapToAttributes,
    create_time: s.createTime,
    update_time: s.updateTime,
  };
}

function infoDefView(d: ExtendInfoDefRow) {
  return {
    id: d.id,
    info_type: d.infoType,
    name: d.name,
    descr: d.descr,
    enabled: d.enabled,
    options: d.options,
    create_time: d.createTime,
    update_time: d.updateTime,
    is_standard: false,
  };
}

/** Devices map raw JSON messages into attributes; other formats carry no fields to map (device-protocol.md §7). */
function checkMapping(format: string, mapToAttributes: boolean) {
  if (mapToAttributes && format !== 'json') {
    throw new BadRequest('map_to_attributes is only allowed for json streams', [
      { path: 'map_to_attributes', message: 'only allowed when format is json' },
    ]);
  }
}

export interface DeviceTypesDeps {
  db: Db;
  clock?: () => number;
  /** Called after a type's data streams or raw TCP settings changed (the data-stream checks cache them). */
  onDataSettingsChanged?: (projectId: string, typeId: string) => void;
}

export function createDeviceTypesService({ db, clock = Date.now, onDataSettingsChanged = () => {} }: DeviceTypesDeps) {
  const types = createDeviceTypesRepository(db);

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

  async function mustGetAttribute(projectId: string, typeId: string, identifier: string) {
    await mustGetType(projectId, typeId);
    const row = await types.attribute(projectId, typeId, identifier);
    if (!row) throw new NotFound('Attribute model');
    return row;
  }

  async function mustGetInfoDef(projectId: string, typeId: string, id: string) {
    await mustGetType(projectId, typeId);
    if ((STANDARD_INFO_TYPES as string[]).includes(id)) {
      throw new BadRequest(`${id} is a standard info: it is built in and cannot be changed or deleted`);
    }
    const row = await types.infoDef(projectId, typeId, id);
    if (!row) throw new NotFound('Extend info');
    return row;
  }

  function duplicate(err: unknown, constraintPart: string, message: string): never {
    if (uniqueViolation(err)?.includes(constraintPart))
      throw new Conflict(message, [{ path: 'identifier', message: 'already exists' }]);
    throw err;
  }

  /** A random type key; the unique index settles the (astronomically unlikely) collision by drawing again. */
  async function withFreshTypeKey(write: (typeKey: string) => Promise<void>): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      const typeKey = randomToken(24);
      try {
        await write(typeKey);
        return typeKey;
      } catch (err) {
        if (attempt >= 2 || !uniqueViolation(err)?.includes('type_key')) throw err;
      }
    }
  }

  /** At most one stream per type reads a raw TCP link (device-protocol.md §6). */
  async function checkSingleTcpBinding(projectId: string, typeId: string, exceptId: string | undefined, tx: Tx) {
    const bound = await types.tcpBoundStream(projectId, typeId, exceptId, tx);
    if (bound) {
      throw new Conflict(
        `The device type already has a TCP-bound data stream ("${bound.identifier}"); unbind it first`,
        [{ path: 'tcp_bound', message: 'another stream is bound to TCP' }],
      );
    }
  }

  async function inUse(projectId: string, id: string, n: number): Promise<never> {
    const count = n || (await types.deviceCount(projectId, id));
    throw new StateConflict(`Device type is used by ${count} device${count === 1 ? '' : 's'}`);
  }

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
      onDataSettingsChanged(scope.projectId, id);
      return read(scope, id);
    },

    /** Refused while devices use the type (the foreign key also refuses, should one be created meanwhile). */
    async delete(scope: Scope, id: string) {
      try {
        await types.transaction(async (tx) => {
          if (!(await types.lock(tx, scope.projectId, id))) throw new NotFound('Device type');
          const n = await types.deviceCount(scope.projectId, id, tx);
          if (n > 0) await inUse(scope.projectId, id, n);
          await types.delete(scope.projectId, id, tx);
        });
        onDataSettingsChanged(scope.projectId, id);
      } catch (err) {
        if (foreignKeyViolation(err)) await inUse(scope.projectId, id, 0);
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

    // Attribute models

    /** The type's attribute models as stored (for telemetry and the device attribute reads). */
    attributeModels(projectId: string, typeId: string): Promise<AttributeModelRow[]> {
      return types.attributes(projectId, typeId);
    },

    async listAttributes(scope: Scope, typeId: string) {
      await mustGetType(scope.projectId, typeId);
      return { items: (await types.attributes(scope.projectId, typeId)).map(attributeView) };
    },

    async createAttribute(scope: Scope, typeId: string, input: AttributeModelInput) {
      await mustGetType(scope.projectId, typeId);
      const options = parseOptions(attributeDataOptions[input.data_type], input.data_options ?? {}, 'data_options');
      const now = clock();
      const id = newId(now);
      try {
        await types.insertAttribute({
          id,
          projectId: scope.projectId,
          deviceTypeId: typeId,
          identifier: input.identifier,
          name: input.name,
          dataType: input.data_type,
          unit: input.unit ?? '',
          options,
          createTime: now,
          updateTime: now,
        });
      } catch (err) {
        duplicate(
          err,
          'attribute_models_type_ident',
          `The device type already has an attribute model "${input.identifier}"`,
        );
      }
      return { id, identifier: input.identifier };
    },

    /** A new data_type without new data_options clears the options: the old ones described another type. */
    async updateAttribute(scope: Scope, typeId: string, identifier: string, patch: AttributeModelPatch) {
      const row = await mustGetAttribute(scope.projectId, typeId, identifier);
      const dataType = patch.data_type ?? (row.dataType as AttributeDataType);
      const typeChanged = dataType !== row.dataType;
      const options =
        patch.data_options !== undefined
          ? parseOptions(attributeDataOptions[dataType], patch.data_options, 'data_options')
          : typeChanged
            ? {}
            : undefined;
      await types.updateAttribute(scope.projectId, row.id, {
        ...(patch.name !== undefined ? { name: patch.name } : {}),
        ...(patch.data_type !== undefined ? { dataType } : {}),
        ...(patch.unit !== undefined ? { unit: patch.unit } : {}),
        ...(options !== undefined ? { options } : {}),
        updateTime: clock(),
      });
      const updated = await types.attribute(scope.projectId, typeId, identifier);
      if (!updated) throw new NotFound('Attribute model');
      return attributeView(updated);
    },

    async deleteAttribute(scope: Scope, typeId: string, identifier: string) {
      const row = await mustGetAttribute(scope.projectId, typeId, identifier);
      await types.deleteAttribute(scope.projectId, row.id);
    },

    // Custom data streams (device-protocol.md §7)

    async listDataStreams(scope: Scope, typeId: string) {
      await mustGetType(scope.projectId, typeId);
      return { items: (await types.streams(scope.projectId, typeId)).map(streamView) };
    },

    async createDataStream(scope: Scope, typeId: string, input: DataStreamInput) {
      const mapToAttributes = input.map_to_attributes ?? false;
      checkMapping(input.format, mapToAttributes);
      const now = clock();
      const id = newId(now);
      try {
        await types.transaction(async (tx) => {
          if (!(await types.lock(tx, scope.projectId, typeId))) throw new NotFound('Device type');
          if (input.tcp_bound) await checkSingleTcpBinding(scope.projectId, typeId, undefined, tx);
          await types.insertStream(
            {
              id,
              projectId: scope.projectId,
              deviceTypeId: typeId,
              identifier: input.identifier,
              name: input.name ?? input.identifier,
              format: input.format,
              tcpBound: input.tcp_bound ?? false,
              mapToAttributes,
              createTime: now,
              updateTime: now,
            },
            tx,
          );
        });
      } catch (err) {
        duplicate(err, 'data_streams_type_ident', `The device type already has a data stream "${input.identifier}"`);
      }
      onDataSettingsChanged(scope.projectId, typeId);
      return { id, identifier: input.identifier };
    },

    async updateDataStream(scope: Scope, typeId: string, identifier: string, patch: DataStreamPatch) {
      const view = await types.transaction(async (tx) => {
        if (!(await types.lock(tx, scope.projectId, typeId))) throw new NotFound('Device type');
        const row = await types.stream(scope.projectId, typeId, identifier, tx);
        if (!row) throw new NotFound('Data stream');
        checkMapping(patch.format ?? row.format, patch.map_to_attributes ?? row.mapToAttributes);
        if (patch.tcp_bound && !row.tcpBound) await checkSingleTcpBinding(scope.projectId, typeId, row.id, tx);
        await types.updateStream(
          scope.projectId,
          row.id,
          {
            ...(patch.name !== undefined ? { name: patch.name } : {}),
            ...(patch.format !== undefined ? { format: patch.format } : {}),
            ...(patch.tcp_bound !== undefined ? { tcpBound: patch.tcp_bound } : {}),
            ...(patch.map_to_attributes !== undefined ? { mapToAttributes: patch.map_to_attributes } : {}),
            updateTime: clock(),
          },
          tx,
        );
        const updated = await types.stream(scope.projectId, typeId, identifier, tx);
        if (!updated) throw new NotFound('Data stream');
        return streamView(updated);
      });
      onDataSettingsChanged(scope.projectId, typeId);
      return view;
    },

    async deleteDataStream(scope: Scope, typeId: string, identifier: string) {
      await mustGetType(scope.projectId, typeId);
      const row = await types.stream(scope.projectId, typeId, identifier);
      if (!row) throw new NotFound('Data stream');
      await types.deleteStream(scope.projectId, row.id);
      onDataSettingsChanged(scope.projectId, typeId);
    },

    // Extend-info definitions (http-api.md §3 "Extended information")

    async listExtendInfos(scope: Scope, typeId: string) {
      const type = await mustGetType(scope.projectId, typeId);
      const standard = STANDARD_INFO_TYPES.map((infoType) => ({
        id: infoType,
        info_type: infoType,
        name: STANDARD_INFOS[infoType].name,
        descr: STANDARD_INFOS[infoType].descr,
        enabled: true,
        options: standardInfoOptions(infoType),
        create_time: type.createTime,
        update_time: type.createTime,
        is_standard: true,
      }));
      const defs = await types.infoDefs(scope.projectId, typeId);
      return { items: [...standard, ...defs.map(infoDefView)] };
    },

    async createExtendInfo(scope: Scope, typeId: string, input: ExtendInfoInput) {
      await mustGetType(scope.projectId, typeId);
      const options = parseOptions(customInfoOptions[input.info_type], input.options ?? {}, 'options');
      const now = clock();
      const id = newId(now);
      await types.insertInfoDef({
        id,
        projectId: scope.projectId,
        deviceTypeId: typeId,
        infoType: input.info_type,
        name: input.name,
        descr: input.descr ?? '',
        enabled: input.enabled ?? true,
        options,
        createTime: now,
        updateTime: now,
      });
      return { id, name: input.name };
    },

    async updateExtendInfo(scope: Scope, typeId: string, infoId: string, patch: ExtendInfoPatch) {
      const row = await mustGetInfoDef(scope.projectId, typeId, infoId);
      const options =
        patch.options !== undefined
          ? parseOptions(customInfoOptions[row.infoType as CustomInfoType], patch.options, 'options')
          : undefined;
      await types.updateInfoDef(scope.projectId, row.id, {
        ...(patch.name !== undefined ? { name: patch.name } : {}),
        ...(patch.descr !== undefined ? { descr: patch.descr } : {}),
        ...(patch.enabled !== undefined ? { enabled: patch.enabled } : {}),
        ...(options !== undefined ? { options } : {}),
        updateTime: clock(),
      });
      const updated = await types.infoDef(scope.projectId, typeId, infoId);
      if (!updated) throw new NotFound('Extend info');
      return infoDefView(updated);
    },

    async deleteExtendInfo(scope: Scope, typeId: string, infoId: string) {
      const row = await mustGetInfoDef(scope.projectId, typeId, infoId);
      await types.deleteInfoDef(scope.projectId, row.id);
    },
  };
}
export type DeviceTypesService = ReturnType<typeof createDeviceTypesService>;
