import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { throttle } from '../src/ctx.ts';

describe('throttle (live-event bursts)', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] }));
  afterEach(() => vi.useRealTimers());

  it('runs the first call at once, then at most once a window: a burst becomes one run at its end', () => {
    let runs = 0;
    const t = throttle(() => runs++, 300);
    t.call();
    expect(runs).toBe(1);
    for (let i = 0; i < 50; i++) t.call();
    expect(runs).toBe(1);
    vi.advanceTimersByTime(299);
    expect(runs).toBe(1);
    vi.advanceTimersByTime(1);
    expect(runs).toBe(2);
    // A quiet window later, a call runs at once again.
    vi.advanceTimersByTime(1_000);
    t.call();
    expect(runs).toBe(3);
  });

  it('cancel drops a held-back run (the component is gone)', () => {
    let runs = 0;
    const t = throttle(() => runs++, 300);
    t.call();
    t.call();
    t.cancel();
    vi.advanceTimersByTime(1_000);
    expect(runs).toBe(1);
  });
});
