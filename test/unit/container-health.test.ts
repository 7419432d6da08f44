import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');

describe('container health checks', () => {
  it('use readiness, not liveness, in the image and in compose', () => {
    const healthcheck = /HEALTHCHECK[^\n]*\\\n\s*CMD (.*)/.exec(read('Dockerfile'))?.[1];
    expect(healthcheck).toMatch(/\/readyz'/);
    const compose = read('docker-compose.yml');
    const appHealth = /\n {2}app:[\s\S]*?healthcheck:[\s\S]*?test: (.*)/.exec(compose)?.[1];
    expect(appHealth).toMatch(/\/readyz'/);
  });

  it('drain within the stop grace period', () => {
    const compose = read('docker-compose.yml');
    const drainMs = Number(/SHUTDOWN_DRAIN_MS: \$\{SHUTDOWN_DRAIN_MS:-(\d+)\}/.exec(compose)?.[1]);
    const graceS = Number(/stop_grace_period: (\d+)s/.exec(compose)?.[1]);
    expect(drainMs).toBeGreaterThan(0);
    expect(drainMs).toBeLessThan((graceS * 1000) / 2);
  });
});
