import { describe, expect, it } from 'vitest';
import { Interner } from '../../src/lib/intern.ts';

describe('Interner (src/lib/intern.ts)', () => {
  it('answers every value with an equal string, kept once', () => {
    const strings = new Interner(10, 64);
    const topic = '$d/01a252249caaf6a037229b9b/attributes/response';
    const rest = topic.slice(topic.indexOf('/', 3) + 1);
    expect(strings.intern(rest)).toBe('attributes/response');
    expect(strings.intern('attributes/response')).toBe('attributes/response');
    expect(strings.size).toBe(1);
    // Exactly the same code units, a lone surrogate included.
    const odd = 'a\ud800b';
    expect(strings.intern(odd)).toBe(odd);
    expect(strings.intern(odd).length).toBe(3);
    expect(strings.intern('')).toBe('');
    expect(strings.size).toBe(3);
  });

  it('keeps at most `max` values, and none longer than `maxLength`', () => {
    const strings = new Interner(3, 8);
    for (let i = 0; i < 100; i++) {
      expect(strings.intern(`v${i}`)).toBe(`v${i}`);
      expect(strings.size).toBeLessThanOrEqual(3);
    }
    // Full, it started over: the last value is kept, so new common values are not shut out for good.
    expect(strings.size).toBe(1);
    const other = new Interner(3, 8);
    expect(other.intern('123456789')).toBe('123456789');
    expect(other.intern('12345678')).toBe('12345678');
    expect(other.size).toBe(1);
  });
});
