/**
 * Preloaded into the brokers of bench/mqtt-connect (`node --expose-gc --import <this file> …`): on
 * SIGUSR2 it runs a full garbage collection and then writes one line
 * `{"bench_memory":{rss,heapUsed,heapTotal,external,arrayBuffers,youngGeneration}}` to stderr (the last: the
 * bytes V8 has committed for its young generation; mqtt-report.ts rssWithoutYoung says why). The bench reads the
 * RSS from /proc right after, so "RSS per connection" compares live memory, not whichever garbage
 * each broker happened to hold when it was sampled. Changes nothing else in the process.
 */
import { writeSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';

const gc = (globalThis as { gc?: () => void }).gc;

process.on('SIGUSR2', () => {
  if (gc) {
    gc();
    gc();
  }
  const m = process.memoryUsage();
  const line = {
    bench_memory: {
      gc: gc !== undefined,
      rss: m.rss,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
      youngGeneration: getHeapSpaceStatistics()
        .filter((s) => s.space_name === 'new_space' || s.space_name === 'new_large_object_space')
        .reduce((sum, s) => sum + s.space_size, 0),
    },
  };
  writeSync(2, `${JSON.stringify(line)}\n`);
});
