import { describe, expect, it } from 'vitest';
import { newId, randomToken, shortCode } from '../../src/lib/ids.ts';

describe('ids', () => {
  it('sort by creation time', () => {
    const a = newId(1_700_000_000_000);
    const b = newId(1_700_000_000_001);
    expect(a).toMatch(/^[0-9a-f]{24}$/);
    expect(a < b).toBe(true);
  });

  it('are unique within the same millisecond', () => {
    const ids = new Set(Array.from({ length: 10_000 }, () => newId(1)));
    expect(ids.size).toBe(10_000);
  });

  it('make tokens of the requested length and alphabet', () => {
    expect(randomToken(40)).toMatch(/^[A-Za-z0-9]{40}$/);
    expect(shortCode(10)).toMatch(/^[A-HJ-NP-Z2-9]{10}$/);
  });
});
