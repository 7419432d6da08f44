import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const hook = path.join(root, 'bench/lib/mqtt-gc-hook.ts');

/** A process with the bench's memory hook that only idles, and the stderr lines it writes. */
function hooked(exposeGc: boolean) {
  const child = spawn(
    process.execPath,
    [
      ...(exposeGc ? ['--expose-gc'] : []),
      '--import',
      'tsx',
      '--import',
      hook,
      '-e',
      "console.log('ready'); setInterval(() => {}, 1000)",
    ],
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  // The preloaded hook is installed before the entry runs, so SIGUSR2 is safe once it says "ready".
  const ready = new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const line = async () => {
    for (;;) {
      const found = stderr.split('\n').find((l) => l.startsWith('{"bench_memory":'));
      if (found) return JSON.parse(found).bench_memory as Record<string, unknown>;
      if (child.exitCode !== null) throw new Error(`exited: ${stderr}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  return { child, line, ready };
}

describe('bench memory hook (bench/lib/mqtt-gc-hook.ts)', () => {
  it('answers SIGUSR2 with the memory after a full GC, once the RSS has settled', async () => {
    const { child, line, ready } = hooked(true);
    try {
      await ready;
      child.kill('SIGUSR2');
      const m = await line();
      expect(m.gc).toBe(true);
      expect(m.settled).toBe(true);
      // It read the RSS at least twice, one step (100 ms; timers may fire a little early) apart, before it answered.
      expect(m.settleMs).toBeGreaterThanOrEqual(90);
      for (const key of ['rss', 'heapUsed', 'heapTotal', 'youngGeneration', 'youngCommitted'])
        expect(m[key], key).toBeGreaterThan(0);
      // The young generation's resident part, within its committed size, within the heap's.
      expect(m.youngCommitted as number).toBeGreaterThanOrEqual(m.youngGeneration as number);
      expect(m.heapTotal as number).toBeGreaterThanOrEqual(m.youngCommitted as number);
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });

  it('says so when the process cannot run a full GC', async () => {
    const { child, line, ready } = hooked(false);
    try {
      await ready;
      child.kill('SIGUSR2');
      expect((await line()).gc).toBe(false);
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });
});
