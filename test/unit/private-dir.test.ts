import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveJwtSecret } from '../../src/lib/jwt-secret.ts';
import { protectDataDir } from '../../src/lib/private-dir.ts';

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(path.join(os.tmpdir(), 'iot-private-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const mode = (p: string) => statSync(p).mode & 0o777;

describe('DATA_DIR is owner-only', () => {
  it('repairs what an older version left readable, and only what the server owns', () => {
    const root = tempDir();
    const dataDir = path.join(root, 'data');
    const outside = path.join(root, 'outside.txt');
    writeFileSync(outside, 'not ours', { mode: 0o644 });
    mkdirSync(path.join(dataDir, 'pg', 'pg_wal'), { recursive: true, mode: 0o755 });
    chmodSync(dataDir, 0o755);
    writeFileSync(path.join(dataDir, 'pg', 'pg_wal', '000000010000000000000001'), 'device token inside', {
      mode: 0o644,
    });
    writeFileSync(path.join(dataDir, 'pg', 'PG_VERSION'), '17', { mode: 0o666 });
    writeFileSync(path.join(dataDir, 'jwt-secret'), 'x'.repeat(40), { mode: 0o644 });
    writeFileSync(path.join(dataDir, 'lock'), '1', { mode: 0o644 });
    writeFileSync(path.join(dataDir, 'notes.txt'), 'the operator keeps this here', { mode: 0o644 });
    symlinkSync(outside, path.join(dataDir, 'pg', 'link'));
    chmodSync(path.join(dataDir, 'pg', 'pg_wal'), 0o755);
    chmodSync(path.join(dataDir, 'pg'), 0o755);

    protectDataDir(dataDir);

    expect(mode(dataDir)).toBe(0o700);
    expect(mode(path.join(dataDir, 'pg'))).toBe(0o700);
    expect(mode(path.join(dataDir, 'pg', 'pg_wal'))).toBe(0o700);
    expect(mode(path.join(dataDir, 'pg', 'pg_wal', '000000010000000000000001'))).toBe(0o600);
    expect(mode(path.join(dataDir, 'pg', 'PG_VERSION'))).toBe(0o600);
    expect(mode(path.join(dataDir, 'jwt-secret'))).toBe(0o600);
    expect(mode(path.join(dataDir, 'lock'))).toBe(0o600);
    // Not the server's: left alone, also through a symbolic link.
    expect(mode(path.join(dataDir, 'notes.txt'))).toBe(0o644);
    expect(mode(outside)).toBe(0o644);
  });

  it('makes what the process writes afterwards owner-only (umask)', () => {
    const dataDir = path.join(tempDir(), 'data');
    protectDataDir(dataDir);
    mkdirSync(path.join(dataDir, 'pg', 'base'), { recursive: true });
    writeFileSync(path.join(dataDir, 'pg', 'base', '16384'), 'a new relation file');
    expect(mode(path.join(dataDir, 'pg', 'base'))).toBe(0o700);
    expect(mode(path.join(dataDir, 'pg', 'base', '16384'))).toBe(0o600);
  });

  it('keeps a generated JWT secret owner-only and fixes a readable one', () => {
    const dataDir = path.join(tempDir(), 'fresh');
    expect(resolveJwtSecret({ DATA_DIR: dataDir, JWT_SECRET: undefined }).source).toBe('generated');
    expect(mode(dataDir)).toBe(0o700);
    expect(mode(path.join(dataDir, 'jwt-secret'))).toBe(0o600);
    chmodSync(path.join(dataDir, 'jwt-secret'), 0o644);
    chmodSync(dataDir, 0o755);
    expect(resolveJwtSecret({ DATA_DIR: dataDir, JWT_SECRET: undefined }).source).toBe('file');
    expect(mode(dataDir)).toBe(0o700);
    expect(mode(path.join(dataDir, 'jwt-secret'))).toBe(0o600);
  });
});
