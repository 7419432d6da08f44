import { describe, expect, it } from 'vitest';
import { createScheduler } from '../../src/domain/alarms/scheduler.ts';

describe('scheduler', () => {
  it('runs due tasks in time order on the injected clock, and none early', async () => {
    let now = 0;
    const s = createScheduler({ clock: () => now });
    const ran: string[] = [];
    s.at(300, () => void ran.push('c'));
    s.at(100, () => void ran.push('a'));
    s.at(100, () => void ran.push('a2'));
    s.at(200, () => void ran.push('b'));
    await s.runDue();
    expect(ran).toEqual([]);
    now = 200;
    await s.runDue();
    expect(ran).toEqual(['a', 'a2', 'b']);
    expect(s.size).toBe(1);
    now = 1000;
    await s.runDue();
    expect(ran).toEqual(['a', 'a2', 'b', 'c']);
    expect(s.size).toBe(0);
  });

  it('cancels, runs tasks added by due tasks, and survives a failing task', async () => {
    let now = 0;
    const errors: unknown[] = [];
    const s = createScheduler({ clock: () => now, onError: (e) => errors.push(e) });
    const ran: string[] = [];
    const cancel = s.at(10, () => void ran.push('cancelled'));
    s.at(10, () => {
      throw new Error('boom');
    });
    s.at(20, async () => {
      ran.push('first');
      s.at(15, () => void ran.push('chained'));
    });
    cancel();
    cancel();
    expect(s.size).toBe(2);
    now = 20;
    await s.runDue();
    expect(ran).toEqual(['first', 'chained']);
    expect(errors).toHaveLength(1);
  });

  it('wakes itself on the real clock once started', async () => {
    const s = createScheduler({ clock: Date.now });
    s.start();
    const done = new Promise<void>((resolve) => s.at(Date.now() + 20, resolve));
    await done;
    s.stop();
    expect(s.size).toBe(0);
  });
});
