/**
 * Preloaded into the brokers of bench/mqtt-connect (`node --expose-gc --import <this file> …`): on SIGUSR2 it
 * runs a full garbage collection, waits until the RSS has settled (rss-settle.ts), and then writes one line to
 * stderr: `{"bench_memory":{rss,heapUsed,heapTotal,external,arrayBuffers,youngGeneration,youngCommitted,…}}`
 * (youngGeneration: the young generation's resident bytes, V8's own count of the pages it touched,
 * `physical_space_size`; youngCommitted: its committed bytes; mqtt-report.ts rssWithoutYoung says why). The
 * bench reads the RSS from /proc right after, so "RSS per connection" compares live memory, not whichever
 * garbage each broker happened to hold when it was sampled. Changes nothing else in the process.
 *
 * Why it waits: V8 hands the pages a full GC emptied to a background thread, which unmaps them tens of
 * milliseconds later. Read at once, the RSS still held them or not, by chance: after a connect storm the same
 * broker read 50–60 MiB apart (bare Aedes 287 MiB at once, 230 MiB 100 ms later; ours 405 and 357), which
 * moved the per-connection ratio between 1.1 and 2.5 from run to run.
 */
import { writeSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';
import { rssSettled } from './rss-settle.ts';

const gc = (globalThis as { gc?: () => void }).gc;

/** A sample is being taken: a second SIGUSR2 meanwhile is ignored (the bench asks for one at a time). */
let sampling = false;

process.on('SIGUSR2', () => {
  if (sampling) return;
  sampling = true;
  sample()
    .catch((err: unknown) => writeSync(2, `${JSON.stringify({ bench_memory_error: String(err) })}\n`))
    .finally(() => (sampling = false));
});

async function sample(): Promise<void> {
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
}
