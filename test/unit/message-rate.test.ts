import { describe, expect, it } from 'vitest';
import { admitMessage } from '../../mqtt-broker/core/message-rate.ts';
import { createRateLimiter } from '../../src/domain/delivery/rate-limiter.ts';
import type { DeviceIdentity } from '../../src/domain/devices/device-identity.ts';

const identity = { deviceId: 'd1', projectId: 'p1', disabled: false } as DeviceIdentity;

/** A limiter on a frozen clock: no tokens come back during a test. */
function limiter(options: { projectRate?: number; maxDelayMs?: number; abuseFactor?: number } = {}) {
  return createRateLimiter({ projectRate: 0, maxDelayMs: 1_000, ...options, clock: () => 1_000_000 });
}

describe('the rate decision for a device message (core/message-rate.ts)', () => {
  it('a message that may be dropped goes now or is refused, then counts as a flood once the device keeps at it', () => {
    const l = limiter({ abuseFactor: 1 });
    const kinds: string[] = [];
    for (let i = 0; i < 32; i++) kinds.push(admitMessage(l, identity, 10, false).kind);
    // The burst (twice the rate) goes; the next refusals up to the rate × abuseFactor are refusals, then floods.
    expect(kinds.slice(0, 20)).toEqual(Array(20).fill('go'));
    expect(kinds.slice(20, 29)).toEqual(Array(9).fill('refuse'));
    expect(kinds.slice(29)).toEqual(['flood', 'flood', 'flood']);
    expect(admitMessage(l, identity, 10, false)).toEqual({ kind: 'flood', by: 'device' });
  });

  it('a message that may wait is held for its tokens, and is a flood (never a refusal) past the longest hold', () => {
    const l = limiter();
    const verdicts = Array.from({ length: 31 }, () => admitMessage(l, identity, 10, true));
    expect(verdicts.slice(0, 20).every((v) => v.kind === 'go')).toBe(true);
    expect(verdicts.slice(20, 30)).toEqual(
      [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000].map((delayMs) => ({ kind: 'wait', delayMs })),
    );
    // The first refusal already: a message that may not be dropped cannot be refused quietly.
    expect(verdicts[30]).toEqual({ kind: 'flood', by: 'device' });
  });

  it('names the project when its budget is what is used up, and charges the cost given', () => {
    const l = limiter({ projectRate: 5 });
    // A cost of 10 takes the project's whole burst (twice 5) at once.
    expect(admitMessage(l, identity, 100, false, 10).kind).toBe('go');
    expect(admitMessage(l, identity, 100, false)).toEqual({ kind: 'refuse', by: 'project' });
    expect(admitMessage(l, { ...identity, deviceId: 'd2' }, 100, true)).toEqual({ kind: 'wait', delayMs: 200 });
  });
});
