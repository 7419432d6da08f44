import { describe, expect, it } from 'vitest';
import { checkCondition } from '../../src/domain/alarms/validation.ts';
import { attributeHolds, renderMessage, type AttributeCondition } from '../../src/domain/alarms/conditions.ts';
import { createLogIds } from '../../src/domain/alarms/log-ids.ts';
import { signature } from '../../src/domain/alarms/notifier.ts';
import { createHmac } from 'node:crypto';

const attr = (c: Partial<AttributeCondition>): AttributeCondition =>
  ({ kind: 'attribute', identifier: 'v', op: '>', ...c }) as AttributeCondition;

describe('attributeHolds', () => {
  it('compares numbers only with numbers', () => {
    expect(attributeHolds(attr({ op: '>', value: 30 }), 31, undefined)).toBe(true);
    expect(attributeHolds(attr({ op: '>', value: 30 }), 30, undefined)).toBe(false);
    expect(attributeHolds(attr({ op: '>', value: 30 }), '31', undefined)).toBe(false);
    expect(attributeHolds(attr({ op: '<=', value: 0 }), 0, undefined)).toBe(true);
  });

  it('between and outside include their bounds differently', () => {
    expect(attributeHolds(attr({ op: 'between', min: 1, max: 2 }), 1, undefined)).toBe(true);
    expect(attributeHolds(attr({ op: 'between', min: 1, max: 2 }), 2.5, undefined)).toBe(false);
    expect(attributeHolds(attr({ op: 'outside', min: 1, max: 2 }), 2, undefined)).toBe(false);
    expect(attributeHolds(attr({ op: 'outside', min: 1, max: 2 }), 0.5, undefined)).toBe(true);
    expect(attributeHolds(attr({ op: 'outside', min: 1, max: 2 }), null, undefined)).toBe(false);
  });

  it('== and != are strict; != ignores objects', () => {
    expect(attributeHolds(attr({ op: '==', value: true }), 1, undefined)).toBe(false);
    expect(attributeHolds(attr({ op: '!=', value: 'ok' }), 'bad', undefined)).toBe(true);
    expect(attributeHolds(attr({ op: '!=', value: 'ok' }), { a: 1 }, undefined)).toBe(false);
  });

  it('change needs a previous value and compares JSON by content', () => {
    expect(attributeHolds(attr({ op: 'change' }), 1, undefined)).toBe(false);
    expect(attributeHolds(attr({ op: 'change' }), 1, 1)).toBe(false);
    expect(attributeHolds(attr({ op: 'change' }), 2, 1)).toBe(true);
    expect(attributeHolds(attr({ op: 'change' }), { a: [1] }, { a: [1] })).toBe(false);
    expect(attributeHolds(attr({ op: 'change' }), { a: [2] }, { a: [1] })).toBe(true);
  });
});

describe('renderMessage', () => {
  it('fills placeholders, dotted names included, and leaves unknown ones as written', () => {
    const vars = { device: { name: 'boiler' }, value: 31.5, threshold: 30, range: [1, 2], s: 'x' };
    expect(renderMessage('{{device.name}} temperature {{ value }} > {{threshold}} {{range}} {{s}}', vars)).toBe(
      'boiler temperature 31.5 > 30 [1,2] x',
    );
    expect(renderMessage('{{nope}} {{device.nope}} {{__proto__.x}}', vars)).toBe(
      '{{nope}} {{device.nope}} {{__proto__.x}}',
    );
  });

  it('bounds the length', () => {
    expect(renderMessage('{{v}}', { v: 'x'.repeat(5000) }).length).toBe(1024);
  });
});

describe('checkCondition', () => {
  it('accepts valid conditions and names the field of invalid ones', () => {
    expect(() => checkCondition({ kind: 'silence', seconds: 10 })).not.toThrow();
    expect(() => checkCondition(attr({ op: 'between', min: 1, max: 1 }))).not.toThrow();
    expect(() => checkCondition(attr({ op: '>', value: 'x' }))).toThrow(
      expect.objectContaining({ errcode: 400, errors: [expect.objectContaining({ path: 'condition.value' })] }),
    );
    expect(() => checkCondition({ kind: 'offline', for_seconds: -1 })).toThrow(
      expect.objectContaining({ errcode: 400 }),
    );
  });
});

describe('log ids', () => {
  it('increase strictly within a millisecond and when the clock steps back', () => {
    const next = createLogIds();
    const ids = [next(1000), next(1000), next(1000), next(999), next(1001)];
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(5);
  });
});

describe('signature', () => {
  it('is HMAC-SHA256 of "<timestamp>.<body>"', () => {
    expect(signature('k', '1', '{}')).toBe(`sha256=${createHmac('sha256', 'k').update('1.{}').digest('hex')}`);
  });
});
