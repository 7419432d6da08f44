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
    await expect(
      cache.get('p', 'k', async () => {
        calls++;
        throw new Error('down');
      }),
    ).rejects.toThrow('down');
    const [a, b] = await Promise.all([
      cache.get('p', 'k', async () => ++calls),
      cache.get('p', 'k', async () => ++calls),
    ]);
    expect([a, b, calls]).toEqual([2, 2, 2]);
  });

  it('peeks at a loaded, fresh value only (undefined values included), never at a loading, failed or expired one', async () => {
    let now = 0;
    const cache = new TtlCache<number | undefined>(1000, () => now);
    let release!: (v: number) => void;
    const loading = cache.get('p', 'k', () => new Promise<number>((r) => (release = r)));
    expect(cache.peek('p', 'k')).toBeUndefined();
    release(7);
    await loading;
    expect(cache.peek('p', 'k')).toEqual({ value: 7 });
    await cache.get('p', 'none', async () => undefined);
    expect(cache.peek('p', 'none')).toEqual({ value: undefined });
    await expect(
      cache.get('p', 'bad', async () => {
        throw new Error('down');
      }),
    ).rejects.toThrow('down');
    expect(cache.peek('p', 'bad')).toBeUndefined();
    now = 1000;
    expect(cache.peek('p', 'k')).toBeUndefined();
    cache.invalidate('p');
    expect(cache.peek('p', 'none')).toBeUndefined();
  });
});
