import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DataDirLocked, lockDataDir } from '../../src/db/data-dir-lock.ts';

let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('data directory lock', () => {
  it('is exclusive while held and free again once released', () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'lock-'));
    const lock = lockDataDir(dir);
    writeFileSync(path.join(dir, 'lock'), String(process.ppid)); // pretend a live other process holds it
    expect(() => lockDataDir(dir)).toThrow(DataDirLocked);
    lock.release();
    lockDataDir(dir).release();
  });

  it('takes over a lock left by a process that is gone', () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'lock-'));
    writeFileSync(path.join(dir, 'lock'), '999999999');
    const lock = lockDataDir(dir);
    lock.release();
  });
});
