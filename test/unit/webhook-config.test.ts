import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';

describe('webhook settings', () => {
  it('defaults to public addresses only, with per-project limits', () => {
    expect(loadConfig({})).toMatchObject({
      ALARM_WEBHOOK_ALLOW_NETWORKS: '',
      ALARM_WEBHOOK_CONCURRENCY: 8,
      ALARM_WEBHOOK_PROJECT_CONCURRENCY: 2,
      ALARM_WEBHOOK_MAX_PENDING: 10_000,
      ALARM_WEBHOOK_PROJECT_MAX_PENDING: 1_000,
      ALARM_WEBHOOK_BREAKER_FAILURES: 5,
      ALARM_WEBHOOK_BREAKER_COOLDOWN_MS: 60_000,
    });
    expect(loadConfig({ ALARM_WEBHOOK_ALLOW_NETWORKS: '10.20.0.0/16, fd12::/16' }).ALARM_WEBHOOK_ALLOW_NETWORKS).toBe(
      '10.20.0.0/16, fd12::/16',
    );
  });

  it('stops the start on a network that is not a CIDR, naming it', () => {
    expect(() => loadConfig({ ALARM_WEBHOOK_ALLOW_NETWORKS: '10.0.0.0/8,10.0.0.0/33' })).toThrow(
      /ALARM_WEBHOOK_ALLOW_NETWORKS: "10.0.0.0\/33" is not an address or CIDR network/,
    );
    expect(() => loadConfig({ ALARM_WEBHOOK_ALLOW_NETWORKS: 'intranet' })).toThrow(/ALARM_WEBHOOK_ALLOW_NETWORKS/);
  });
});
