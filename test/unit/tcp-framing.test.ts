import { describe, expect, it } from 'vitest';
import { createGapFramer, createJsonFramer, type Framer } from '../../mqtt-broker/tcp/framing.ts';

const b = (s: string) => Buffer.from(s, 'utf8');
const texts = (messages: Buffer[]) => messages.map((m) => m.toString('utf8'));

/** Feeds chunks and collects every message, then the gap's. */
function feed(framer: Framer, chunks: Array<string | Buffer>, gap = true): string[] {
  const out: Buffer[] = [];
  for (const c of chunks) out.push(...framer.push(typeof c === 'string' ? b(c) : c));
  if (gap) out.push(...framer.gap());
  return texts(out);
}

describe('gap framing (hex and text streams)', () => {
  it('joins every chunk that arrives before the gap into one message', () => {
    const f = createGapFramer(1024);
    expect(texts(f.push(b('AB')))).toEqual([]);
    expect(texts(f.push(b('CD')))).toEqual([]);
    expect(f.holding).toBe(true);
    expect(texts(f.gap())).toEqual(['ABCD']);
    expect(f.holding).toBe(false);
    expect(f.gap()).toEqual([]);
  });

  it('keeps bytes exactly, binary included', () => {
    const f = createGapFramer(1024);
    const bytes = Buffer.from([0x00, 0xff, 0x0a, 0x0d, 0x7b, 0x22]);
    f.push(bytes.subarray(0, 3));
    f.push(bytes.subarray(3));
    expect(f.gap()[0]!.equals(bytes)).toBe(true);
  });

  it('cuts a run longer than the maximum into messages of the maximum, losing nothing', () => {
    const f = createGapFramer(4);
    expect(texts(f.push(b('0123456789')))).toEqual(['0123', '4567']);
    expect(texts(f.push(b('ab')))).toEqual(['89ab']);
    expect(texts(f.gap())).toEqual([]);
    expect(f.cut).toBe(3);
    expect(feed(f, ['xy'])).toEqual(['xy']);
  });

  it('copies what it holds: later changes to the chunk do not alter a message', () => {
    const f = createGapFramer(64);
    const chunk = b('hello');
    f.push(chunk);
    chunk.fill(0);
    expect(texts(f.gap())).toEqual(['hello']);
  });
});

describe('JSON framing', () => {
  it('makes one message of a value however it was split, byte by byte included', () => {
    const value = '{"a":[1,2,{"b":"}]"}],"c":"x\\"{"}';
    const f = createJsonFramer(1024);
    const out: Buffer[] = [];
    for (const ch of value) out.push(...f.push(b(ch)));
    expect(texts(out)).toEqual([value]);
    expect(JSON.parse(out[0]!.toString())).toEqual({ a: [1, 2, { b: '}]' }], c: 'x"{' });
    expect(f.holding).toBe(false);
  });

  it('does not end a value at the gap', () => {
    const f = createJsonFramer(1024);
    expect(feed(f, ['{"temp":'])).toEqual([]);
    expect(f.holding).toBe(true);
    expect(feed(f, ['21.5}'])).toEqual(['{"temp":21.5}']);
  });

  it('makes several messages of several values in one chunk, skipping whitespace between them', () => {
    const f = createJsonFramer(1024);
    expect(feed(f, ['{"a":1}{"a":2}\r\n[3,4]  \n{"a":', '5}\r\n'])).toEqual(['{"a":1}', '{"a":2}', '[3,4]', '{"a":5}']);
  });

  it('treats braces and escaped quotes inside strings as text', () => {
    const f = createJsonFramer(1024);
    expect(feed(f, ['{"s":"{[\\\\"}', '{"t":"\\\\\\"}"}'])).toEqual(['{"s":"{[\\\\"}', '{"t":"\\\\\\"}"}']);
  });

  it('passes what is between values on as runs, ended by the next value or the gap', () => {
    const f = createJsonFramer(1024);
    expect(feed(f, ['ping\r\n{"a":1} 42'])).toEqual(['ping', '{"a":1}', '42']);
    expect(feed(f, ['"str{ing}" ', 'true'])).toEqual(['"str{ing}" true']);
    expect(feed(f, ['}}garbage]', '{"ok":true}'], false)).toEqual(['}}garbage]', '{"ok":true}']);
  });

  it('drops a value over the maximum whole, then frames the next one', () => {
    const f = createJsonFramer(16);
    expect(feed(f, ['{"big":"', 'x'.repeat(40), '"}{"n":1}'])).toEqual(['{"n":1}']);
    expect(f.oversized).toBe(1);
    // Exactly the maximum passes.
    const exact = `{"k":"${'y'.repeat(16 - 8)}"}`;
    expect(exact).toHaveLength(16);
    expect(feed(f, [exact])).toEqual([exact]);
  });

  it('drops a run over the maximum and recovers at the next value or gap', () => {
    const f = createJsonFramer(8);
    expect(feed(f, ['z'.repeat(20), '{"a":1}', 'q'.repeat(9)])).toEqual(['{"a":1}']);
    expect(f.oversized).toBe(2);
    expect(feed(f, ['{}'])).toEqual(['{}']);
  });

  it('discards an incomplete value on request (a stalled device)', () => {
    const f = createJsonFramer(1024);
    f.push(b('{"a":'));
    expect(f.discard()).toBe(true);
    expect(f.holding).toBe(false);
    expect(f.discard()).toBe(false);
    expect(feed(f, ['{"b":2}'])).toEqual(['{"b":2}']);
  });
});
