/**
 * Waiting for a process's RSS to settle after a full GC (mqtt-gc-hook.ts says why): reads `read()` every `stepMs`
 * until two reads in a row differ by less than `delta` bytes, or `maxMs` have passed.
 */
export interface SettleOptions {
  stepMs: number;
  delta: number;
  maxMs: number;
  read: () => number;
  sleep: (ms: number) => Promise<void>;
  now: () => number;
}

const SETTLE_DEFAULTS: SettleOptions = {
  stepMs: 100,
  delta: 1024 * 1024,
  maxMs: 3000,
  read: () => process.memoryUsage.rss(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  now: () => performance.now(),
};

/** How long it waited, in whole milliseconds, and whether the RSS settled (false: it gave up after `maxMs`). */
export async function rssSettled(
  options: Partial<SettleOptions> = {},
): Promise<{ settleMs: number; settled: boolean; reads: number }> {
  const { stepMs, delta, maxMs, read, sleep, now } = { ...SETTLE_DEFAULTS, ...options };
  const started = now();
  let previous = read();
  for (let reads = 2; ; reads++) {
    await sleep(stepMs);
    const current = read();
    const settleMs = Math.round(now() - started);
    if (Math.abs(current - previous) < delta) return { settleMs, settled: true, reads };
    if (settleMs >= maxMs) return { settleMs, settled: false, reads };
    previous = current;
  }
}
