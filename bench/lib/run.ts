import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * The frame of a bench run: bounded by a watchdog (a stuck server must never hold the machine;
 * exiting kills the children), stopped by SIGINT/SIGTERM, with a temporary directory removed at exit
 * unless `keepLogs()` was called (a failed run keeps its logs).
 */
export function benchRun(
  name: string,
  timeoutMinutes: number,
): { tmp: string; keepLogs(): void; finish(problems: string[]): never } {
  const watchdog = setTimeout(() => {
    console.error(`bench/${name}: gave up after ${timeoutMinutes} minutes`);
    process.exit(1);
  }, timeoutMinutes * 60_000);
  watchdog.unref();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`bench/${name}: ${signal}, stopping`);
      process.exit(130);
    });
  }
  const tmp = mkdtempSync(path.join(os.tmpdir(), `bench-${name}-`));
  let keep = false;
  process.on('exit', () => {
    if (!keep) rmSync(tmp, { recursive: true, force: true });
  });
  return {
    tmp,
    keepLogs: () => void (keep = true),
    /** Ends the run: its failed checks (the logs then kept) and exit code 1, or "all checks passed" and 0. */
    finish(problems) {
      if (problems.length) {
        keep = true;
        console.error(`\nFAILED checks:\n${problems.map((p) => `- ${p}`).join('\n')}\nlogs kept in ${tmp}`);
        process.exit(1);
      }
      console.log('all checks passed');
      process.exit(0);
    },
  };
}

/**
 * Prints the goals a run missed, a line each, after every figure (bench/README.md "Goals"); when its checks passed
 * (no `problems`, whose verdict `finish` gives) a missed goal still fails the run: `passedLine`, then exit 1.
 */
export function reportMissedGoals(missed: readonly string[], problems: readonly string[], passedLine: string): void {
  if (!missed.length) return;
  console.error(`\nGOALS MISSED (${missed.length}):`);
  for (const line of missed) console.error(`  GOAL MISSED: ${line}`);
  if (!problems.length) {
    console.log(passedLine);
    process.exit(1);
  }
}
