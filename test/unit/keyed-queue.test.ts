import { describe, expect, it } from 'vitest';
import { KeyedQueue } from '../../src/lib/keyed-queue.ts';

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

describe('KeyedQueue', () => {
  it("runs one key's work in order, one at a time, while other keys go on", async () => {
    const queue = new KeyedQueue<string>();
    const log: string[] = [];
    const work = (name: string) => async () => {
      log.push(`${name} start`);
      await tick();
      log.push(`${name} end`);
      return name;
    };
    const results = await Promise.all([
      queue.run('a', work('a1')),
      queue.run('b', work('b1')),
      queue.run('a', work('a2')),
    ]);
    expect(results).toEqual(['a1', 'b1', 'a2']);
    expect(log.indexOf('a1 end')).toBeLessThan(log.indexOf('a2 start'));
    expect(log.indexOf('b1 start')).toBeLessThan(log.indexOf('a1 end'));
  });

  it('rejects only the failed work; the next work of the key still runs', async () => {
    const queue = new KeyedQueue<string>();
    const failed = queue.run('a', () => Promise.reject(new Error('boom')));
    const next = queue.run('a', () => Promise.resolve('after'));
    await expect(failed).rejects.toThrow('boom');
    await expect(next).resolves.toBe('after');
  });

  it('tells whether a key is busy and forgets it once idle', async () => {
    const queue = new KeyedQueue<string>();
    let release!: () => void;
    const done = queue.run('a', () => new Promise<void>((resolve) => (release = resolve)));
    expect(queue.busy('a')).toBe(true);
    expect(queue.busy('b')).toBe(false);
    const idle = queue.idle();
    await tick();
    release();
    await done;
    await idle;
    expect(queue.busy('a')).toBe(false);
  });
});
