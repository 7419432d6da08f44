/**
 * Preloaded into the brokers of bench/mqtt-connect (`node --expose-gc --import <this file> …`): on
 * SIGUSR2 it runs a full garbage collection, waits until the RSS has settled, and then writes one line
 * `{"bench_memory":{rss,heapUsed,heapTotal,external,arrayBuffers,youngGeneration,youngCommitted,settleMs,settled}}` to stderr
 * (youngGeneration: the young generation's resident bytes, V8's `physical_space_size`; youngCommitted: its
 * committed bytes; mqtt-report.ts rssWithoutYoung says why). The bench reads the RSS from /proc right after, so "RSS per connection" compares live memory, not
 * whichever garbage each broker happened to hold when it was sampled. Changes nothing else in the process.
 *
 * Why it waits: V8 hands the pages a full GC emptied to a background thread, which unmaps them tens of
 * milliseconds later. Read at once, the RSS still held them or not, by chance: after a connect storm the same
 * broker read 50–60 MiB apart (bare Aedes 287 MiB at once, 230 MiB 100 ms later; ours 405 and 357), which
 * moved the per-connection ratio between 1.1 and 2.5 from run to run.
 */
import { writeSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';

const gc = (globalThis as { gc?: () => void }).gc;

/** How often the RSS is read while it settles, how little it may move between reads, and how long to wait at most. */
const SETTLE_STEP_MS = 100;
const SETTLE_DELTA = 1024 * 1024;
const SETTLE_MAX_MS = 3000;

/** Resolves once two reads SETTLE_STEP_MS apart differ by less than SETTLE_DELTA (or SETTLE_MAX_MS passed). */
async function rssSettled(): Promise<{ settleMs: number; settled: boolean }> {
  const started = performance.now();
  let previous = process.memoryUsage.rss();
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, SETTLE_STEP_MS));
    const now = process.memoryUsage.rss();
    const settleMs = Math.round(performance.now() - started);
    if (Math.abs(now - previous) < SETTLE_DELTA) return { settleMs, settled: true };
    if (settleMs >= SETTLE_MAX_MS) return { settleMs, settled: false };
    previous = now;
  }
}

process.on('SIGUSR2', async () => {
  if (gc) {
    gc();
    gc();
  }
  const { settleMs, settled } = await rssSettled();
  const m = process.memoryUsage();
  const young = getHeapSpaceStatistics().filter(
    (s) => s.space_name === 'new_space' || s.space_name === 'new_large_object_space',
  );
  const line = {
    bench_memory: {
      gc: gc !== undefined,
      rss: m.rss,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
      youngGeneration: young.reduce((sum, s) => sum + s.physical_space_size, 0),
      youngCommitted: young.reduce((sum, s) => sum + s.space_size, 0),
      settleMs,
      settled,
    },
  };
  writeSync(2, `${JSON.stringify(line)}\n`);
});
