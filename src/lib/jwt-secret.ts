import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.ts';
import { protectDataDir } from './private-dir.ts';

/**
 * JWT_SECRET when set; otherwise (never in production: config refuses) a random secret generated
 * once and kept in DATA_DIR, so tokens survive restarts of a development or embedded install.
 */
export function resolveJwtSecret(config: Pick<Config, 'JWT_SECRET' | 'DATA_DIR'>): {
  secret: string;
  source: 'env' | 'file' | 'generated';
} {
  if (config.JWT_SECRET) return { secret: config.JWT_SECRET, source: 'env' };
  protectDataDir(config.DATA_DIR);
  const file = path.join(config.DATA_DIR, 'jwt-secret');
  try {
    const stored = readFileSync(file, 'utf8').trim();
    if (stored.length >= 32) return { secret: stored, source: 'file' };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const secret = randomBytes(48).toString('base64url');
  writeFileSync(file, secret + '\n', { mode: 0o600 });
  return { secret, source: 'generated' };
}
