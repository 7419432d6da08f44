import { z } from 'zod';
import { BadRequest, SUB_ADDRESS } from './port.ts';

/**
 * The shapes of upstream payloads (device-protocol.md §3, §8), as zod schemas. The refusals devices get
 * are part of the protocol, so each check keeps its own message (`decode`); zod only says whether a
 * value has the shape.
 */

/** At most this many entries in `attributes/series` and keys in `attributes/get`. */
export const MAX_SERIES = 1000;
export const MAX_KEYS = 200;
/** Back-dated reports may not come from the future beyond clock skew. */
export const MAX_FUTURE_MS = 5 * 60_000;

type Problem = { path: string; message: string };

/**
 * The value itself (not zod's copy: what the device sent goes on as it was) if it has the schema's shape,
 * else a BadRequest with exactly `message` (and `errors`). The schemas here transform nothing.
 */
export function decode<S extends z.ZodType>(
  schema: S,
  value: unknown,
  message: string,
  errors?: Problem[],
): z.output<S> {
  if (!schema.safeParse(value).success) throw new BadRequest(message, errors);
  return value as z.output<S>;
}

/** The payload as JSON. */
export function parseJson(payload: Buffer): unknown {
  try {
    return JSON.parse(payload.toString('utf8'));
  } catch {
    throw new BadRequest('payload must be JSON');
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A JSON object (not an array, not null). A predicate, not `z.record`: this is on every command reply and
 * gateway message, and `z.record` checks and copies every key (a reply of 500 keys cost 3× its JSON.parse).
 */
export const JsonObject = z.custom<Record<string, unknown>>(isObject);

/** `keys` of `attributes/get` and `gateway/attributes/get`: attribute identifiers. */
export const AttributeKeys = z.array(z.string().max(64)).max(MAX_KEYS).optional();
export const KEYS_MESSAGE = `keys must be an array of at most ${MAX_KEYS} attribute identifiers`;

/** `attributes/get`: `{}` or `{"keys":[…]}` (an empty payload is `{}`). */
export function attributesGet(payload: Buffer): { keys?: string[] } {
  const body = decode(JsonObject, payload.length ? parseJson(payload) : {}, 'payload must be {} or {"keys":[…]}');
  return { keys: decode(AttributeKeys, body.keys, KEYS_MESSAGE) };
}

const Series = z.array(z.unknown()).min(1).max(MAX_SERIES);
/** One schema for every message (zod compiles an object schema on its first use: built per message it cost ~0.2 ms). */
const SeriesEntry = z.looseObject({ ts: z.number().int().min(1) });

/**
 * `attributes/series`: 1–MAX_SERIES `{"ts":<ms>,"attributes":{…}}`, each time at most `now` plus clock
 * skew. The whole array is checked before anything is stored (the attributes by the service).
 */
export function attributesSeries(payload: Buffer, now: number): Array<{ ts: number; attributes: unknown }> {
  const body = decode(
    Series,
    parseJson(payload),
    `payload must be an array of 1–${MAX_SERIES} {"ts":<ms>,"attributes":{…}}`,
  );
  const latest = now + MAX_FUTURE_MS;
  for (const [i, e] of body.entries()) {
    const message = `entry ${i}: ts must be a time in ms, not in the future`;
    if (decode(SeriesEntry, e, message).ts > latest) throw new BadRequest(message);
  }
  return body as Array<{ ts: number; attributes: unknown }>;
}

/** `command/reply/<id>`: `{"method":…,"params":{…},"id":<id>}`. */
export function commandReply(payload: Buffer): Record<string, unknown> {
  return decode(JsonObject, parseJson(payload), 'payload must be {"method":…,"params":{…},"id":<id>}');
}

// Gateway topics (device-protocol.md §8): each names its sub-device by `"device":"<addr>"`.

/** A predicate for the same reason as JsonObject: on every gateway message. */
const Addressed = z.custom<{ device: string }>((v) => isObject(v) && typeof v.device === 'string');
const Address = z.string().regex(SUB_ADDRESS);

/** `"device":"<addr>"` of a gateway message whose shape is `shape`. */
export function subAddress(body: unknown, shape: string): string {
  const { device } = decode(Addressed, body, `payload must be ${shape}`, [{ path: 'device', message: 'required' }]);
  return decode(Address, device, 'device must be a sub-device address of 1–64 letters, digits, "_", ".", ":", "-"', [
    { path: 'device', message: 'invalid address' },
  ]);
}

const CommandId = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

/** `command` of `gateway/command/reply`: an object whose `id` is the command's (a positive integer, or its text). */
export function gatewayCommand(body: Record<string, unknown>): { command: Record<string, unknown>; id: number } {
  const command = decode(JsonObject, body.command, 'command must be {"id":<id>,"method":…,"params":{…}}', [
    { path: 'command', message: 'required' },
  ]);
  const id = decode(CommandId, Number(command.id), 'command.id must be the id of the command (a positive integer)', [
    { path: 'command.id', message: 'expected a positive integer' },
  ]);
  return { command, id };
}
