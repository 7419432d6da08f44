import { describe, expect, it } from 'vitest';
import { TtlCache } from '../../src/lib/ttl-cache.ts';

describe('TtlCache', () => {
  it('runs a lazy thenable (a drizzle query) once per entry, however often it is read', async () => {
    let runs = 0;
    // Like a drizzle query builder: nothing runs until then() is called, and every then() runs it again.
    const query = () => ({
      then<T>(resolve: (v: number) => T, reject?: (e: unknown) => T) {
        runs += 1;
        return Promise.resolve(42).then(resolve, reject);
      },
    });
    let now = 0;
    const cache = new TtlCache<number>(1000, () => now);
    for (let i = 0; i < 5; i++) expect(await cache.get('p', 'k', query as unknown as () => Promise<number>)).toBe(42);
    expect(runs).toBe(1);
    now = 2000;
    expect(await cache.get('p', 'k', query as unknown as () => Promise<number>)).toBe(42);
    expect(runs).toBe(2);
  });

  it('forgets a failed load and shares concurrent loads', async () => {
    let calls = 0;
    const cache = new TtlCache<number>(1000);
    await expect(cache.get('p', 'k', async () => { calls++; throw new Error('down'); })).rejects.toThrow('down');
    const [a, b] = await Promise.all([cache.get('p', 'k', async () => ++calls), cache.get('p', 'k', async () => ++calls)]);
    expect([a, b, calls]).toEqual([2, 2, 2]);
  });
});
