import { unstorableJson } from '../../lib/unstorable-text.ts';
import { BadRequest } from '../../errors.ts';

/**
 * The wire rules of custom data (device-protocol.md §3, §6–7; http-api.md §3): stream identifiers,
 * message types and sizes, and the bytes of a downstream message. The service that sends, records
 * and reads messages is data-streams.service.ts.
 */

export const MESSAGE_TYPES = ['hex', 'text', 'json'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];
export const MAX_DATA_BYTES = 64 * 1024;

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
    if (typeof msg !== 'string')
      throw new BadRequest(`msg must be a string for type ${type}`, [{ path: 'msg', message: 'expected a string' }]);
    if (type === 'text') bytes = Buffer.from(msg, 'utf8');
    else {
      const hex = msg.replace(/\s+/g, '');
      if (!/^(?:[0-9a-fA-F]{2})+$/.test(hex)) {
        throw new BadRequest('msg must be hexadecimal digits in pairs (spaces allowed)', [
          { path: 'msg', message: 'invalid hex' },
        ]);
      }
      bytes = Buffer.from(hex, 'hex');
    }
  }
  if (!bytes.length) throw new BadRequest('msg must not be empty', [{ path: 'msg', message: 'empty' }]);
  if (bytes.length > MAX_DATA_BYTES)
    throw new BadRequest(`msg is larger than ${MAX_DATA_BYTES} bytes`, [{ path: 'msg', message: 'too large' }]);
  return bytes;
}
