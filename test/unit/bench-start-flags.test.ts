import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startFlags } from '../../bench/lib/start-flags.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** startFlags of a checkout whose package.json has this start script. */
function flagsOf(start: string): string[] {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'start-flags-'));
  dirs.push(dir);
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ scripts: { start } }));
  return startFlags(dir);
}

describe("the benches run servers with npm start's Node flags (bench/lib/start-flags.ts)", () => {
  it('takes the flags, not the loader or the entry', () => {
    expect(flagsOf('node --max-semi-space-size=32 --no-allocation-site-pretenuring --import tsx src/main.ts')).toEqual([
      '--max-semi-space-size=32',
      '--no-allocation-site-pretenuring',
    ]);
    expect(flagsOf('node src/main.ts')).toEqual([]);
    // Loaders, in either spelling, are the starter's own; any other flag is taken, booleans too.
    expect(
      flagsOf('node --import=tsx --optimize-for-size -r dotenv/config --max_semi_space_size=8 src/main.ts'),
    ).toEqual(['--optimize-for-size', '--max_semi_space_size=8']);
  });

  it("passes on this repository's own flags", () => {
    expect(startFlags()).toEqual(['--max-semi-space-size=32', '--no-allocation-site-pretenuring']);
  });
});
