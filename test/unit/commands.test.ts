import { describe, expect, it } from 'vitest';
import { nextFreeSeq } from '../../src/domain/commands/send.ts';

describe('command id allocation', () => {
  it('starts at 1 for a device without commands', () => {
    expect(nextFreeSeq(undefined, [])).toBe(1);
  });

  it("follows the device's latest id", () => {
    expect(nextFreeSeq(41, [])).toBe(42);
    expect(nextFreeSeq(41, [41])).toBe(42);
  });

  it('skips ids held by open commands', () => {
    expect(nextFreeSeq(1, [2, 3, 5])).toBe(4);
  });

  it('wraps after 2147483647 and keeps skipping open ids', () => {
    expect(nextFreeSeq(2_147_483_647, [])).toBe(1);
    expect(nextFreeSeq(2_147_483_646, [2_147_483_647, 1, 2])).toBe(3);
  });
});
