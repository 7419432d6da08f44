/**
 * Preloaded into the brokers of bench/mqtt-connect (`node --expose-gc --import <this file> …`): on
 * SIGUSR2 it runs a full garbage collection and then writes one line
 * `{"bench_memory":{rss,heapUsed,heapTotal,external,arrayBuffers}}` to stderr. The bench reads the
 * RSS from /proc right after, so "RSS per connection" compares live memory, not whichever garbage
 * each broker happened to hold when it was sampled. Changes nothing else in the process.
 */
import { writeSync } from 'node:fs';

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
    },
  };
  writeSync(2, `${JSON.stringify(line)}\n`);
});
