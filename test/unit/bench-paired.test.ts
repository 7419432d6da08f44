import { describe, expect, it } from 'vitest';
import { pairedRatios, pairedSchedule } from '../../bench/lib/paired.ts';

describe('bench/lib/paired.ts', () => {
  it('puts the baseline first, last and between any two routes', () => {
    expect(pairedSchedule('H', ['A', 'B'], 2)).toEqual(['H', 'A', 'H', 'B', 'H', 'A', 'H', 'B', 'H']);
    expect(pairedSchedule('H', ['A'], 0)).toEqual(['H']);
  });

  it('divides each window by the baseline around it, and takes the median', () => {
    // The baseline drifts down from 20,000 to 10,000 over the run; A is always a tenth of it, B a fifth.
    const order = pairedSchedule('H', ['A', 'B'], 3);
    const baseAt = (i: number) => 20_000 - (10_000 * i) / (order.length - 1);
    const windows = order.map((name, i) => ({
      name,
      rps: name === 'H' ? baseAt(i) : baseAt(i) * (name === 'A' ? 0.1 : 0.2),
    }));
    const r = pairedRatios('H', windows);
    expect(r.get('A')!.ratios).toHaveLength(3);
    expect(r.get('A')!.median).toBeCloseTo(0.1, 10);
    expect(r.get('B')!.median).toBeCloseTo(0.2, 10);
    // Against the mean of the first and last baseline (the run's table), the drift shows.
    const ends = (windows[0]!.rps + windows.at(-1)!.rps) / 2;
    expect(Math.abs(windows[1]!.rps / ends - 0.1)).toBeGreaterThan(0.02);
  });

  it('reports the spread and takes the median of an even count', () => {
    const w = (name: string, rps: number) => ({ name, rps });
    const r = pairedRatios('H', [w('H', 100), w('A', 10), w('H', 100), w('A', 30), w('H', 100)]).get('A')!;
    expect(r).toEqual({ median: 0.2, min: 0.1, max: 0.3, ratios: [0.1, 0.3] });
  });

  it('refuses a route window without a baseline on both sides, or a baseline that answered nothing', () => {
    const w = (name: string, rps: number) => ({ name, rps });
    expect(() => pairedRatios('H', [w('H', 1), w('A', 1), w('A', 1), w('H', 1)])).toThrow(/not between/);
    expect(() => pairedRatios('H', [w('A', 1), w('H', 1)])).toThrow(/not between/);
    expect(() => pairedRatios('H', [w('H', 0), w('A', 1), w('H', 0)])).toThrow(/answered nothing/);
  });
});
