import { describe, expect, it } from 'vitest';
import { fill, normalizeRoute, parseExamples, shapeDifferences } from './markdown.ts';

describe('shapeDifferences: the example checker of docs/http-api.md', () => {
  it('accepts the same names and JSON types, whatever the values', () => {
    expect(
      shapeDifferences(
        { id: 'a', n: 1, ok: true, t: null, o: { x: [1] } },
        { id: 'b', n: 2.5, ok: false, t: null, o: { x: [3, 4] } },
      ),
    ).toEqual([]);
  });

  it('finds a renamed, missing, extra or retyped field, also deep in arrays', () => {
    expect(shapeDifferences({ descr: 'x' }, { description: 'x' })).toEqual([
      '$.descr: documented, missing in the answer',
      '$.description: in the answer, not documented',
    ]);
    expect(shapeDifferences({ items: [{ n: 1 }] }, { items: [{ n: 1 }, { n: '1' }] })).toEqual([
      '$.items[1].n: documented number, got string ("1")',
    ]);
    expect(shapeDifferences({ a: null }, { a: 'x' })).toHaveLength(1);
    expect(shapeDifferences({ a: [] }, { a: [1] })).toHaveLength(1);
  });

  it('allows other keys only under "..." and lets each array element match any documented one', () => {
    expect(shapeDifferences({ tags: { '...': '...' } }, { tags: { a: 'b' } })).toEqual([]);
    expect(
      shapeDifferences([{ value: 'text' }, { value: { lat: 1 } }], [{ value: { lat: 2 } }, { value: 's' }]),
    ).toEqual([]);
    expect(shapeDifferences([{ value: 'text' }], [{ value: 1 }])).toHaveLength(1);
  });
});

describe('reading examples', () => {
  it('parses request, headers, body and the answer with its status', () => {
    const md = [
      '#### `POST /api/v1/device`',
      '```http',
      'POST /api/v1/device',
      'Authorization: Bearer <app_token>',
      '',
      '{"name": "x"}',
      '```',
      '',
      '```json status=401',
      '{"result": false}',
      '```',
    ].join('\n');
    const [ex] = parseExamples(md);
    expect(ex).toMatchObject({
      method: 'POST',
      path: '/api/v1/device',
      headers: { authorization: 'Bearer <app_token>' },
      body: '{"name": "x"}',
      response: { kind: 'json', status: 401 },
    });
    expect(ex?.endpoint?.routes).toEqual(['POST /api/v1/device']);
    expect(() => parseExamples('```http\nGET /x\n```\n')).toThrow(/followed by a json or csv answer/);
  });

  it('fills placeholders and refuses unknown ones', () => {
    expect(fill('/device/<device_id>', { device_id: 'd1' }, 1)).toBe('/device/d1');
    expect(() => fill('<nope>', {}, 7)).toThrow(/line 7: unknown placeholder <nope>/);
  });

  it('normalizes path parameters however they are spelt', () => {
    expect(normalizeRoute('POST /device/v1/<access_token>/attributes')).toBe(
      normalizeRoute('POST /device/v1/:access_token/attributes'),
    );
    expect(normalizeRoute('GET /a/{id}')).toBe('GET /a/:_');
  });
});
