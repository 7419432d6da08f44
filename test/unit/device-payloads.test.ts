import { describe, expect, it } from 'vitest';
import {
  attributesGet,
  attributesSeries,
  commandReply,
  gatewayCommand,
  parseJson,
  subAddress,
} from '../../mqtt-broker/core/payloads.ts';

/** The refusals devices get for malformed upstream payloads are part of the protocol (device-protocol.md §3, §8). */
const json = (v: unknown) => Buffer.from(JSON.stringify(v));
function refusal(fn: () => unknown) {
  try {
    fn();
  } catch (err) {
    const e = err as { errcode: number; message: string; errors: unknown[] };
    return { errcode: e.errcode, message: e.message, errors: e.errors };
  }
  throw new Error('not refused');
}

describe('upstream payload shapes', () => {
  it('parses JSON or refuses with "payload must be JSON"', () => {
    expect(parseJson(json({ a: 1 }))).toEqual({ a: 1 });
    expect(refusal(() => parseJson(Buffer.from('{')))).toEqual({
      errcode: 400,
      message: 'payload must be JSON',
      errors: [],
    });
  });

  it('attributes/get: {} (or nothing) or {"keys":[…]} of at most 200 identifiers of at most 64 characters', () => {
    expect(attributesGet(Buffer.alloc(0))).toEqual({ keys: undefined });
    expect(attributesGet(json({ keys: ['a', 'b'] }))).toEqual({ keys: ['a', 'b'] });
    expect(attributesGet(json({ keys: Array.from({ length: 200 }, (_, i) => `k${i}`) })).keys).toHaveLength(200);
    for (const bad of [[], null, 'x', 3])
      expect(refusal(() => attributesGet(json(bad))).message).toBe('payload must be {} or {"keys":[…]}');
    const keys = 'keys must be an array of at most 200 attribute identifiers';
    for (const bad of ['a', null, [1], ['x'.repeat(65)], Array.from({ length: 201 }, (_, i) => `k${i}`)])
      expect(refusal(() => attributesGet(json({ keys: bad }))).message).toBe(keys);
    expect(attributesGet(json({ keys: ['x'.repeat(64)] })).keys).toEqual(['x'.repeat(64)]);
  });

  it('attributes/series: 1–1000 entries, each with a ts in ms that is not in the future', () => {
    const now = 1_700_000_000_000;
    const ok = [{ ts: now - 1000, attributes: { t: 1 } }];
    expect(attributesSeries(json(ok), now)).toEqual(ok);
    // Clock skew of up to five minutes is allowed.
    expect(attributesSeries(json([{ ts: now + 300_000, attributes: {} }]), now)).toHaveLength(1);
    const shape = 'payload must be an array of 1–1000 {"ts":<ms>,"attributes":{…}}';
    for (const bad of [{}, [], Array.from({ length: 1001 }, () => ok[0])])
      expect(refusal(() => attributesSeries(json(bad), now)).message).toBe(shape);
    for (const bad of [{ ts: 'x' }, { ts: 0 }, { ts: 1.5 }, { ts: now + 300_001 }, [now], null, { attributes: {} }])
      expect(refusal(() => attributesSeries(json([ok[0], bad]), now)).message).toBe(
        'entry 1: ts must be a time in ms, not in the future',
      );
  });

  it('command/reply: a JSON object, passed on as the device sent it', () => {
    const body = { id: 3, method: 'm', params: { a: 1 } };
    expect(commandReply(json(body))).toEqual(body);
    for (const bad of [[], null, 7])
      expect(refusal(() => commandReply(json(bad))).message).toBe(
        'payload must be {"method":…,"params":{…},"id":<id>}',
      );
  });

  it('gateway messages: "device" is a sub-device address; a command reply names its command id', () => {
    expect(subAddress({ device: 'rs485-3' }, '{"device":"<addr>"}')).toBe('rs485-3');
    for (const bad of [{}, { device: 1 }, [], null])
      expect(refusal(() => subAddress(bad, '{"device":"<addr>"}'))).toEqual({
        errcode: 400,
        message: 'payload must be {"device":"<addr>"}',
        errors: [{ path: 'device', message: 'required' }],
      });
    for (const bad of ['', 'a/b', 'x'.repeat(65), 'a b'])
      expect(refusal(() => subAddress({ device: bad }, '{"device":"<addr>"}'))).toEqual({
        errcode: 400,
        message: 'device must be a sub-device address of 1–64 letters, digits, "_", ".", ":", "-"',
        errors: [{ path: 'device', message: 'invalid address' }],
      });
    expect(gatewayCommand({ command: { id: '5', method: 'm' } })).toEqual({ command: { id: '5', method: 'm' }, id: 5 });
    for (const bad of [undefined, [], 'x'])
      expect(refusal(() => gatewayCommand({ command: bad }))).toEqual({
        errcode: 400,
        message: 'command must be {"id":<id>,"method":…,"params":{…}}',
        errors: [{ path: 'command', message: 'required' }],
      });
    for (const bad of [undefined, 0, -1, 1.5, 'x', 2 ** 53])
      expect(refusal(() => gatewayCommand({ command: { id: bad } }))).toEqual({
        errcode: 400,
        message: 'command.id must be the id of the command (a positive integer)',
        errors: [{ path: 'command.id', message: 'expected a positive integer' }],
      });
  });
});
