import { describe, expect, it } from 'vitest';
import type { PresenceRow } from '../../src/db/repositories/presence.repository.ts';
import { createPresenceService } from '../../src/domain/devices/presence.service.ts';
import { createEventBus } from '../../src/domain/events/event-bus.ts';

// Reads of online state share presence writes (architecture.md §9: no write per message, nor per read):
// however many readers wait, a connect costs the write under way plus at most one follow-up.
const dev = (deviceId: string) => ({
  deviceId,
  projectId: 'p1',
  name: deviceId,
  typeId: null,
  connType: '1',
  disabled: false,
});

/** A repository whose writes end when the test says so; `calls` holds each write's rows. */
function gatedRepo() {
  const calls: PresenceRow[][] = [];
  const gates: (() => void)[] = [];
  return {
    calls,
    /** Ends the oldest write still open. */
    release: () => gates.shift()?.(),
    repo: {
      apply: (rows: PresenceRow[]) => {
        calls.push(structuredClone(rows));
        return new Promise<void>((resolve) => gates.push(resolve));
      },
      resetOnline: async () => {},
    },
  };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe('presence.settle under concurrent reads', () => {
  it('ten concurrent reads after one connect cost one write, with reports arriving during it', async () => {
    let n = 0;
    const presence = createPresenceService({
      repo: {
        apply: async (_rows: PresenceRow[]) => {
          n++;
          // A report from some device lands while this write is in flight: it stays for the timer.
          presence.touch(`r${n}`, 'attributes', Date.now());
          await new Promise((r) => setTimeout(r, 5));
        },
        resetOnline: async () => {},
      },
      bus: createEventBus(),
      logger: { error: () => {} },
    });
    presence.connected(dev('d0'), 'mqtt');
    await Promise.all(Array.from({ length: 10 }, () => presence.settle()));
    expect(n).toBe(1);
    // r1, the report made during the write, waits for the timer.
    expect(presence.pendingCount).toBe(1);
  });

  it('a read whose connect is in the write under way waits for that write only', async () => {
    const g = gatedRepo();
    const presence = createPresenceService({ repo: g.repo, bus: createEventBus(), logger: { error: () => {} } });
    presence.connected(dev('d1'), 'mqtt');
    const first = presence.settle();
    await tick();
    expect(g.calls).toHaveLength(1);
    // A report during the write: not an online change, so a new reader needs nothing more.
    presence.touch('d2', 'attributes');
    let done = false;
    const second = presence.settle().then(() => (done = true));
    await tick();
    expect(done).toBe(false);
    g.release();
    await first;
    await tick();
    expect(g.calls).toHaveLength(1);
    expect(done).toBe(true);
    await second;
    expect(g.calls[0]).toMatchObject([{ deviceId: 'd1', online: true }]);
  });

  it('readers after a connect made during a write share one follow-up write, and see it written', async () => {
    const g = gatedRepo();
    const written: string[][] = [];
    const presence = createPresenceService({
      repo: g.repo,
      bus: createEventBus(),
      logger: { error: () => {} },
      onOnlineWritten: (p) => written.push(p),
    });
    presence.connected(dev('d1'), 'mqtt');
    const first = presence.settle();
    await tick();
    presence.connected(dev('d2'), 'mqtt');
    const later = Array.from({ length: 10 }, () => presence.settle());
    let settled = 0;
    for (const r of later) void r.then(() => settled++);
    g.release();
    await first;
    await tick();
    // The follow-up runs: the later readers still wait for it (read-your-writes for each of them).
    expect(g.calls).toHaveLength(2);
    expect(settled).toBe(0);
    expect(g.calls[1]).toMatchObject([{ deviceId: 'd2', online: true }]);
    // A report during the follow-up stays for the timer: no third write for these readers.
    presence.touch('d3', 'data');
    g.release();
    await tick();
    await tick();
    expect(g.calls).toHaveLength(2);
    await Promise.all(later);
    expect(g.calls).toHaveLength(2);
    expect(written).toEqual([['p1'], ['p1']]);
    // Nothing unwritten: the next read costs nothing.
    await presence.settle();
    expect(g.calls).toHaveLength(2);
  });

  it('the timer and stop share the queued flush too', async () => {
    const g = gatedRepo();
    const presence = createPresenceService({ repo: g.repo, bus: createEventBus(), logger: { error: () => {} } });
    presence.touch('d1', 'data');
    const a = presence.flush();
    await tick();
    presence.touch('d2', 'data');
    const b = presence.flush();
    const c = presence.flush();
    expect(b).toBe(c);
    g.release();
    await a;
    await tick();
    g.release();
    await Promise.all([b, c]);
    expect(g.calls.map((rows) => rows.map((r) => r.deviceId))).toEqual([['d1'], ['d2']]);
  });

  it('during an outage concurrent readers wait for one failed write and log one error', async () => {
    let n = 0;
    const errors: unknown[] = [];
    const presence = createPresenceService({
      repo: {
        apply: async () => {
          n++;
          await new Promise((r) => setTimeout(r, 2));
          throw new Error('database down');
        },
        resetOnline: async () => {},
      },
      bus: createEventBus(),
      logger: { error: (o: unknown) => void errors.push(o) },
      clock: () => 5_000,
    });
    presence.connected(dev('d1'), 'mqtt');
    await Promise.all(Array.from({ length: 10 }, () => presence.settle()));
    for (let i = 0; i < 10; i++) await presence.settle();
    expect(n).toBe(1);
    expect(errors).toHaveLength(1);
    // Nothing is lost: the online change is still pending for the timer.
    expect(presence.pendingCount).toBe(1);
  });
});
