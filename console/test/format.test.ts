import { describe, expect, it } from 'vitest';
import {
  conditionText,
  formatAgo,
  formatHex,
  formatTime,
  formatValue,
  lastActive,
  parseJsonObject,
} from '../src/format.ts';

describe('formatting', () => {
  it('shows values with unit, precision and boolean texts of the model', () => {
    expect(formatValue(21.5, { unit: '°C' })).toBe('21.5 °C');
    expect(formatValue(21.456, { unit: '°C', data_options: { precision: 1 } })).toBe('21.5 °C');
    expect(formatValue(40, {})).toBe('40');
    expect(formatValue(true, { data_options: { true_text: 'On', false_text: 'Off' } })).toBe('On');
    expect(formatValue(false, { data_options: { true_text: 'On', false_text: 'Off' } })).toBe('Off');
    expect(formatValue(false)).toBe('false');
    expect(formatValue('eco')).toBe('eco');
    expect(formatValue({ a: 1 }, { unit: 'x' })).toBe('{"a":1}');
    expect(formatValue(null)).toBe('—');
  });

  it('writes times as local YYYY-MM-DD HH:MM:SS', () => {
    const d = new Date(2026, 0, 2, 3, 4, 5);
    expect(formatTime(d.getTime())).toBe('2026-01-02 03:04:05');
    expect(formatTime(undefined)).toBe('—');
  });

  it('says how long ago in English and Chinese', () => {
    const now = Date.now();
    expect(formatAgo(now - 5_000, now, 'en')).toBe('5 s ago');
    expect(formatAgo(now - 180_000, now, 'en')).toBe('3 min ago');
    expect(formatAgo(now - 2 * 3_600_000, now, 'zh')).toBe('2 小时前');
    expect(formatAgo(now - 4 * 86_400_000, now, 'en')).toBe('4 d ago');
    expect(formatAgo(undefined, now, 'en')).toBe('—');
  });

  it('groups hex by byte and leaves non-hex text alone', () => {
    expect(formatHex('0AFF10')).toBe('0a ff 10');
    expect(formatHex('0a ff 10')).toBe('0a ff 10');
    expect(formatHex('')).toBe('');
    expect(formatHex('abc')).toBe('abc');
    expect(formatHex('zz')).toBe('zz');
  });

  it('takes the latest activity of a device', () => {
    expect(lastActive({ connect: 5, attributes: 9, disconnect: 7 })).toBe(9);
    expect(lastActive({})).toBeUndefined();
  });

  it('accepts only JSON objects as params and attributes', () => {
    expect(parseJsonObject('{"delay": 3}')).toEqual({ delay: 3 });
    expect(parseJsonObject('  ')).toEqual({});
    expect(() => parseJsonObject('{delay: 3')).toThrow(/Invalid JSON/);
    expect(() => parseJsonObject('[1]')).toThrow(/JSON object/);
    expect(() => parseJsonObject('3')).toThrow(/JSON object/);
  });
});

describe('alarm rule conditions', () => {
  it('reads as one line per kind (docs/http-api.md §4.8)', () => {
    expect(conditionText({ kind: 'attribute', identifier: 'temperature', op: '>', value: 30 })).toBe(
      'temperature > 30',
    );
    expect(conditionText({ kind: 'attribute', identifier: 'mode', op: '==', value: 'eco', for_seconds: 60 })).toBe(
      'mode == "eco" (60 s)',
    );
    expect(conditionText({ kind: 'attribute', identifier: 't', op: 'between', min: 1, max: 5 })).toBe('t between 1…5');
    expect(conditionText({ kind: 'attribute', identifier: 't', op: 'change' })).toBe('t change');
    expect(conditionText({ kind: 'offline', for_seconds: 300 })).toBe('offline > 300 s');
    expect(conditionText({ kind: 'silence', seconds: 3600 })).toBe('silence > 3600 s');
    expect(conditionText({ kind: 'new' })).toBe('{"kind":"new"}');
  });
});
