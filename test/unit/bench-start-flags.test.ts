import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startFlags } from '../../bench/lib/mqtt-proc.ts';

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

describe("the benches run servers with npm start's Node flags (bench/lib/mqtt-proc.ts startFlags)", () => {
  it('takes --name=value and --no-name flags, not the loader or the entry', () => {
    expect(flagsOf('node --max-semi-space-size=32 --no-allocation-site-pretenuring --import tsx src/main.ts')).toEqual([
      '--max-semi-space-size=32',
      '--no-allocation-site-pretenuring',
    ]);
    expect(flagsOf('node src/main.ts')).toEqual([]);
  });

  it("passes on this repository's own flags", () => {
    expect(startFlags()).toEqual(['--max-semi-space-size=32', '--no-allocation-site-pretenuring']);
  });
});
