import type { DeviceTypesInTransaction } from '../../db/repositories/device-types.repository.ts';
import { BadRequest, Conflict, NotFound } from '../../errors.ts';
import { newId } from '../../lib/ids.ts';
import type { Scope } from '../auth/principal.ts';
import { duplicate, type TypePartsContext } from './type-parts.ts';
import { streamView } from './views.ts';

export const STREAM_FORMATS = ['hex', 'text', 'json'] as const;
export type StreamFormat = (typeof STREAM_FORMATS)[number];

export interface DataStreamInput {
  identifier: string;
  name?: string;
  format: StreamFormat;
  tcp_bound?: boolean;
  map_to_attributes?: boolean;
}
export type DataStreamPatch = Partial<Omit<DataStreamInput, 'identifier'>>;

/** Devices map raw JSON messages into attributes; other formats carry no fields to map (device-protocol.md §7). */
function checkMapping(format: string, mapToAttributes: boolean) {
  if (mapToAttributes && format !== 'json') {
    throw new BadRequest('map_to_attributes is only allowed for json streams', [
      { path: 'map_to_attributes', message: 'only allowed when format is json' },
    ]);
  }
}

/** A device type's custom data stream definitions (device-protocol.md §7). */
export function createStreamDefinitions({ types, clock, onTypeChanged, mustGetType }: TypePartsContext) {
  /** At most one stream per type reads a raw TCP link (device-protocol.md §6). */
  async function checkSingleTcpBinding(
    r: DeviceTypesInTransaction,
    projectId: string,
    typeId: string,
    exceptId: string | undefined,
  ) {
    const bound = await r.tcpBoundStream(projectId, typeId, exceptId);
    if (bound) {
      throw new Conflict(
        `The device type already has a TCP-bound data stream ("${bound.identifier}"); unbind it first`,
        [{ path: 'tcp_bound', message: 'another stream is bound to TCP' }],
      );
    }
  }

  return {
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
        await types.inTransaction(async (r) => {
          if (!(await r.lock(scope.projectId, typeId))) throw new NotFound('Device type');
          if (input.tcp_bound) await checkSingleTcpBinding(r, scope.projectId, typeId, undefined);
          await r.insertStream({
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
          });
        });
      } catch (err) {
        duplicate(err, 'data_stream_ident', `The device type already has a data stream "${input.identifier}"`);
      }
      onTypeChanged(scope.projectId, typeId);
      return { id, identifier: input.identifier };
    },

    async updateDataStream(scope: Scope, typeId: string, identifier: string, patch: DataStreamPatch) {
      const view = await types.inTransaction(async (r) => {
        if (!(await r.lock(scope.projectId, typeId))) throw new NotFound('Device type');
        const row = await r.stream(scope.projectId, typeId, identifier);
        if (!row) throw new NotFound('Data stream');
        checkMapping(patch.format ?? row.format, patch.map_to_attributes ?? row.mapToAttributes);
        if (patch.tcp_bound && !row.tcpBound) await checkSingleTcpBinding(r, scope.projectId, typeId, row.id);
        await r.updateStream(scope.projectId, row.id, {
          ...(patch.name !== undefined ? { name: patch.name } : {}),
          ...(patch.format !== undefined ? { format: patch.format } : {}),
          ...(patch.tcp_bound !== undefined ? { tcpBound: patch.tcp_bound } : {}),
          ...(patch.map_to_attributes !== undefined ? { mapToAttributes: patch.map_to_attributes } : {}),
          updateTime: clock(),
        });
        const updated = await r.stream(scope.projectId, typeId, identifier);
        if (!updated) throw new NotFound('Data stream');
        return streamView(updated);
      });
      onTypeChanged(scope.projectId, typeId);
      return view;
    },

    async deleteDataStream(scope: Scope, typeId: string, identifier: string) {
      await mustGetType(scope.projectId, typeId);
      const row = await types.stream(scope.projectId, typeId, identifier);
      if (!row) throw new NotFound('Data stream');
      await types.deleteStream(scope.projectId, row.id);
      onTypeChanged(scope.projectId, typeId);
    },
  };
}
