import { describe, expect, it } from 'vitest';
import { rssSettled } from '../../bench/lib/rss-settle.ts';

const MiB = 1024 * 1024;

/** rssSettled over a scripted run of RSS readings, on a clock that only the sleeps move. */
function scripted(readings: number[]) {
  let t = 0;
  let i = 0;
  return rssSettled({
    stepMs: 100,
    delta: MiB,
    maxMs: 1000,
    read: () => readings[Math.min(i++, readings.length - 1)]!,
    sleep: async (ms) => {
      t += ms;
    },
    now: () => t,
  });
}

describe('rssSettled (bench/lib/rss-settle.ts)', () => {
  it('waits while the RSS falls, and answers once two reads a step apart agree', async () => {
    const r = await scripted([400 * MiB, 360 * MiB, 357 * MiB, 356.5 * MiB]);
    expect(r).toEqual({ settleMs: 300, settled: true, reads: 4 });
  });

  it('answers after one step when nothing moves', async () => {
    expect(await scripted([300 * MiB, 300 * MiB])).toEqual({ settleMs: 100, settled: true, reads: 2 });
  });

  it('gives up after maxMs and says so', async () => {
    const rising = Array.from({ length: 50 }, (_, k) => (100 + 2 * k) * MiB);
    expect(await scripted(rising)).toEqual({ settleMs: 1000, settled: false, reads: 11 });
  });
});
