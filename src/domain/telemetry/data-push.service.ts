import { deviceInScope } from '../devices/device-in-scope.ts';
import { unstorableJson } from '../../lib/unstorable-text.ts';
import type { DataPushRepository } from '../../db/repositories/data-push.repository.ts';
import type { DevicesRepository } from '../../db/repositories/devices.repository.ts';
import { BadRequest, NotFound, StateConflict } from '../../errors.ts';
import type { Scope } from '../auth/principal.ts';
import { sendOrFail, type SessionRegistry, type Transport } from '../delivery/sessions.ts';

export const STREAM_IDENTIFIER = /^[A-Za-z0-9_-]{1,64}$/;
export const MESSAGE_TYPES = ['hex', 'text', 'json'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];
export const MAX_DATA_BYTES = 64 * 1024;

export interface DataPushDeps {
  repo: DataPushRepository;
  devices: Pick<DevicesRepository, 'get'>;
  sessions: Pick<SessionRegistry, 'get'>;
}

/**
 * The bytes of a downstream message (device-protocol.md §6, http-api.md §3): hex → decoded bytes
 * (spaces allowed), text → UTF-8, json → serialized JSON.
 */
export function encodeMessage(type: MessageType, msg: unknown): Buffer {
  let bytes: Buffer;
  if (type === 'json') {
    if (msg === undefined) throw new BadRequest('msg is required', [{ path: 'msg', message: 'required' }]);
    const problem = unstorableJson(msg);
    if (problem) throw new BadRequest(problem, [{ path: 'msg', message: problem }]);
    bytes = Buffer.from(JSON.stringify(msg));
  } else {
    if (typeof msg !== 'string') throw new BadRequest(`msg must be a string for type ${type}`, [{ path: 'msg', message: 'expected a string' }]);
    if (type === 'text') bytes = Buffer.from(msg, 'utf8');
    else {
      const hex = msg.replace(/\s+/g, '');
      if (!/^(?:[0-9a-fA-F]{2})+$/.test(hex)) {
        throw new BadRequest('msg must be hexadecimal digits in pairs (spaces allowed)', [{ path: 'msg', message: 'invalid hex' }]);
      }
      bytes = Buffer.from(hex, 'hex');
    }
  }
  if (!bytes.length) throw new BadRequest('msg must not be empty', [{ path: 'msg', message: 'empty' }]);
  if (bytes.length > MAX_DATA_BYTES) throw new BadRequest(`msg is larger than ${MAX_DATA_BYTES} bytes`, [{ path: 'msg', message: 'too large' }]);
  return bytes;
}

/** Downstream custom data (`data/<identifier>/set`, or raw bytes on a TCP link: device-protocol.md §3, §6). */
export function createDataPushService({ repo, devices, sessions }: DataPushDeps) {
  return {
    async push(scope: Scope, deviceId: string, identifier: string, message: { type: MessageType; msg: unknown }, pushMode: Transport = 'mqtt'): Promise<void> {
      if (!STREAM_IDENTIFIER.test(identifier)) {
        throw new BadRequest('The stream identifier must match ^[A-Za-z0-9_-]{1,64}$', [{ path: 'identifier', message: 'invalid identifier' }]);
      }
      const bytes = encodeMessage(message.type, message.msg);
      const device = await deviceInScope(devices, scope, deviceId);
      // A type that defines streams accepts only those; without definitions any valid identifier goes through.
      if (device.typeId) {
        const streams = await repo.streamIdentifiers(scope.projectId, device.typeId);
        if (streams.length && !streams.includes(identifier)) throw new NotFound('Data stream');
      }
      const session = sessions.get(deviceId);
      if (!session || session.projectId !== scope.projectId) throw new StateConflict('Device is offline');
      if (session.transport !== pushMode) throw new StateConflict(`Device is not connected over ${pushMode}`);
      await sendOrFail(session, pushMode === 'mqtt' ? `data/${identifier}/set` : '', bytes);
    },
  };
}
export type DataPushService = ReturnType<typeof createDataPushService>;
