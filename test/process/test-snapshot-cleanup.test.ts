import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { until } from '../helpers/wait.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const VITEST = path.join(ROOT, 'node_modules/vitest/vitest.mjs');

interface Observed {
  seen: boolean;
  leftBehind: boolean;
  code: number | null;
}

/**
 * Runs a small test file in a vitest process of its own and watches the migrated-database snapshot
 * that test/global-setup.ts writes to the temporary directory under that process's pid.
 */
function runVitest(interruptWhenSeen: boolean): Promise<Observed> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.TEST_DATABASE_URL;
  const child = spawn(process.execPath, [VITEST, 'run', 'test/unit/cli-table.test.ts'], {
    cwd: ROOT,
    env,
    stdio: 'ignore',
  });
  const file = path.join(os.tmpdir(), `iot-cloud-test-${child.pid}.tar`);
  let seen = false;
  let exited = false;
  const done = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => {
      exited = true;
      resolve(code);
    });
  });
  // Looks every 10 ms until the run ends (within the describe's 120 s), or interrupts it once the snapshot is there.
  const watch = until(
    () => {
      if (existsSync(file)) {
        seen = true;
        if (interruptWhenSeen) {
          child.kill('SIGINT');
          return true;
        }
      }
      return exited;
    },
    'the vitest run to end',
    { timeout: 120_000, interval: 10 },
  );
  return Promise.all([done, watch]).then(([code]) => ({ seen, leftBehind: existsSync(file), code }));
}

describe("the test run's database snapshot", { timeout: 120_000 }, () => {
  it('is removed when the run ends', async () => {
    const run = await runVitest(false);
    expect(run.code).toBe(0);
    expect(run.seen).toBe(true);
    expect(run.leftBehind).toBe(false);
  });

  it('is removed when the run is interrupted', async () => {
    const run = await runVitest(true);
    expect(run.seen).toBe(true);
    expect(run.leftBehind).toBe(false);
  });
});
