import { describe, expect, it } from 'vitest';
import type { ConnectLoad, Measured } from '../../bench/lib/mqtt-measure.ts';
import type { Memory } from '../../bench/lib/mqtt-proc.ts';
import { judgeGoals } from '../../bench/lib/mqtt-report.ts';

const MiB = 1024 * 1024;
const mem = (rss: number, youngGeneration: number, youngCommitted = youngGeneration): Memory => ({
  rss: rss * MiB,
  peak: rss * MiB,
  heapUsed: 0,
  external: 0,
  heapTotal: 0,
  youngGeneration: youngGeneration * MiB,
  youngCommitted: youngCommitted * MiB,
});
/** A run of 10,000 connections whose memory went from `idle` to `connected` (the rest is what the goals read). */
const run = (idle: Memory, connected: Memory) =>
  ({
    connected: 10_000,
    connectMs: 1_000,
    idle,
    connectedMem: connected,
    run: { latencies: [1, 2, 3] },
  }) as unknown as Measured;
const load = { devices: 10_000, rate: 1_000, durationS: 10 } as ConnectLoad;
const rssGoal = (ours: Measured, bare: Measured) =>
  judgeGoals(ours, [bare, bare], load).find((v) => /RSS/.test(v.name))!;

describe('bench:mqtt-connect memory goal', () => {
  it("leaves V8's young generation out: its growth while connecting is no connection's memory", () => {
    // Bare grows its young generation from 8 to 64 MiB while connecting; ours had it at 64 already.
    const verdict = rssGoal(run(mem(200, 64), mem(350, 64)), run(mem(80, 8), mem(236, 64)));
    // Plain RSS: 150 against 156 MiB, "met"; without the young generation: 150 against 100 MiB.
    expect(verdict.ratio).toBe(1.5);
    expect(verdict.ok).toBe(false);
    expect(verdict.miss).toMatch(/ours\/bare 1\.50/);
  });

  it("subtracts the young generation's resident part, not its committed size", () => {
    // Ours: 64 MiB committed at idle, of it 32 resident; all 64 resident once connected. Bare as above.
    const verdict = rssGoal(run(mem(200, 32, 64), mem(382, 64)), run(mem(80, 8), mem(236, 64)));
    // (382 − 64) − (200 − 32) = 150 against 100 MiB; the committed size would have charged ours 182.
    expect(verdict.ratio).toBe(1.5);
  });

  it('meets the goal when only the young generation differs', () => {
    const verdict = rssGoal(run(mem(200, 8), mem(366, 64)), run(mem(80, 64), mem(190, 64)));
    expect(verdict.ratio).toBe(1);
    expect(verdict.ok).toBe(true);
  });

  it('misses when the baseline is not positive: a young generation committed but not yet resident', () => {
    // With few connections bare's committed young generation grew more than its RSS did.
    const verdict = rssGoal(run(mem(460, 64), mem(475, 64)), run(mem(80, 8), mem(99, 32)));
    expect(verdict.bare).toBeLessThan(0);
    expect(verdict.ok).toBe(false);
  });
});
