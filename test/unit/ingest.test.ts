import { afterEach, beforeEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import type { TelemetryRow } from '../../src/db/repositories/history.repository.ts';
import { isTransientDbError } from '../../src/db/errors.ts';
import { createIngest } from '../../src/domain/telemetry/ingest.ts';

const row = (identifier: string, value = 1): TelemetryRow => ({
  projectId: 'p',
  deviceId: 'd',
  identifier,
  ts: 1,
  value,
  dataType: 'number',
  attrType: 'report',
  history: true,
});

/** A controllable write: records batches, and lets the test decide when each completes. */
function gate() {
  const batches: TelemetryRow[][] = [];
  const pending: Array<{ resolve(): void; reject(e: unknown): void }> = [];
  return {
    batches,
    pending,
    write: (rows: TelemetryRow[]) =>
      new Promise<void>((resolve, reject) => {
        batches.push(rows);
        pending.push({ resolve, reject });
      }),
    async next() {
      await expect.poll(() => pending.length).toBeGreaterThan(0);
      return pending.shift()!;
    },
  };
}

const settle = (p: Promise<unknown>) =>
  p.then(
    () => 'done',
    (e: unknown) => e,
  );

describe('telemetry ingest pipeline', () => {
  it('gathers concurrent submissions into one batch and resolves them only after it commits', async () => {
    const g = gate();
    const ingest = createIngest({ write: g.write, batchSize: 100, batchDelayMs: 5 });
    let resolved = 0;
    const subs = [ingest.submit([row('a')]), ingest.submit([row('b'), row('c')]), ingest.submit([row('d')])].map((p) =>
      p.then(() => resolved++),
    );
    const first = await g.next();
    expect(g.batches[0]!.map((r) => r.identifier)).toEqual(['a', 'b', 'c', 'd']);
    await new Promise((r) => setTimeout(r, 20));
    expect(resolved).toBe(0);
    first.resolve();
    await Promise.all(subs);
    expect(resolved).toBe(3);
    expect(ingest.stats()).toMatchObject({ batches: 1, values: 4, pendingValues: 0 });
  });

  it('with no batch delay, starts a batch once the turn is over, with no timer, and gathers what arrives meanwhile', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'setImmediate', 'clearTimeout', 'clearImmediate'] });
    try {
      const g = gate();
      const ingest = createIngest({ write: g.write, batchSize: 100, batchDelayMs: 0 });
      // Submitted in one turn (one socket read's messages): one batch, started without any timer running.
      const turn = [ingest.submit([row('a')]), ingest.submit([row('b')])];
      expect(g.batches).toHaveLength(0);
      expect(vi.getTimerCount()).toBe(1);
      // No time passes: an immediate, not a timeout.
      await vi.advanceTimersByTimeAsync(0);
      expect(g.batches.map((b) => b.map((r) => r.identifier))).toEqual([['a', 'b']]);
      // Arriving while it is written: the next batch, started by the write's end, not by a timer.
      const later = [ingest.submit([row('c')]), ingest.submit([row('d')])];
      await vi.advanceTimersByTimeAsync(0);
      expect(g.batches).toHaveLength(1);
      g.pending.shift()!.resolve();
      await Promise.all(turn);
      await vi.waitFor(() => expect(g.batches).toHaveLength(2));
      expect(g.batches[1]!.map((r) => r.identifier)).toEqual(['c', 'd']);
      g.pending.shift()!.resolve();
      await Promise.all(later);
    } finally {
      vi.useRealTimers();
    }
  });

  it('with no batch delay and two writers, starts the second only for a full batch, not for every turn', async () => {
    // The writer's patience (a timeout) does not run out here: only immediates run.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    onTestFinished(() => void vi.useRealTimers());
    const g = gate();
    const ingest = createIngest({ write: g.write, batchSize: 3, batchDelayMs: 0, concurrency: 2 });
    const first = ingest.submit([row('a')]);
    await g.next().then((w) => g.pending.unshift(w));
    // Next turns, while the first write runs: they wait for it rather than make a second small batch.
    const second = ingest.submit([row('b')]);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(g.batches).toHaveLength(1);
    // A full batch waiting: the second writer takes it at once.
    const full = ingest.submit([row('c'), row('d')]);
    await expect.poll(() => g.batches.length).toBe(2);
    expect(g.batches[1]!.map((r) => r.identifier)).toEqual(['b', 'c', 'd']);
    for (const w of g.pending.splice(0)) w.resolve();
    await Promise.all([first, second, full]);
  });

  it('with no batch delay and two writers, starts the second after a few ms when the first write takes long', async () => {
    const g = gate();
    const ingest = createIngest({ write: g.write, batchSize: 100, batchDelayMs: 0, concurrency: 2 });
    const first = ingest.submit([row('a')]);
    await expect.poll(() => g.batches.length).toBe(1);
    const second = ingest.submit([row('b')]);
    // The first write hangs (a lock wait, a retry): the second writer does not wait for it.
    await expect.poll(() => g.batches.length, { timeout: 1_000 }).toBe(2);
    expect(g.batches[1]!.map((r) => r.identifier)).toEqual(['b']);
    for (const w of g.pending.splice(0)) w.resolve();
    await Promise.all([first, second]);
  });

  it('starts the batch of a submission marked `now` at once instead of waiting for the batch delay', async () => {
    const g = gate();
    const ingest = createIngest({ write: g.write, batchSize: 100, batchDelayMs: 60_000 });
    const waiting = ingest.submit([row('report')]);
    await new Promise((r) => setTimeout(r, 20));
    // A report waits for its batch to fill.
    expect(g.batches).toHaveLength(0);
    const urgent = ingest.submit([row('push')], { now: true });
    // The urgent one starts the batch, taking what waited with it.
    (await g.next()).resolve();
    await Promise.all([waiting, urgent]);
    expect(g.batches.map((b) => b.map((r) => r.identifier))).toEqual([['report', 'push']]);
  });

  it('lets a submission marked `now` join the next batch while one is being written', async () => {
    const g = gate();
    const ingest = createIngest({ write: g.write, batchSize: 100, batchDelayMs: 60_000 });
    const first = ingest.submit([row('a')], { now: true });
    const writing = await g.next();
    const second = ingest.submit([row('b')], { now: true });
    await new Promise((r) => setTimeout(r, 20));
    expect(g.batches).toHaveLength(1);
    writing.resolve();
    (await g.next()).resolve();
    await Promise.all([first, second]);
    expect(g.batches.map((b) => b.map((r) => r.identifier))).toEqual([['a'], ['b']]);
  });

  it('bounds batches by size and writes the next batch while more arrive (one write at a time)', async () => {
    const g = gate();
    const ingest = createIngest({ write: g.write, batchSize: 3, batchDelayMs: 1000 });
    const subs = Array.from({ length: 7 }, (_, i) => ingest.submit([row(`v${i}`)]));
    const first = await g.next();
    expect(g.batches[0]).toHaveLength(3);
    expect(g.pending).toHaveLength(0);
    first.resolve();
    (await g.next()).resolve();
    (await g.next()).resolve();
    await Promise.all(subs);
    expect(g.batches.map((b) => b.length)).toEqual([3, 3, 1]);
  });

  it('writes up to `concurrency` batches at once', async () => {
    const g = gate();
    const ingest = createIngest({ write: g.write, batchSize: 2, batchDelayMs: 1000, concurrency: 2 });
    const subs = Array.from({ length: 6 }, (_, i) => ingest.submit([row(`v${i}`)]));
    await expect.poll(() => g.pending.length).toBe(2);
    expect(g.batches.map((b) => b.length)).toEqual([2, 2]);
    for (const p of g.pending.splice(0)) p.resolve();
    await expect.poll(() => g.pending.length).toBe(1);
    g.pending.shift()!.resolve();
    await Promise.all(subs);
    expect(g.batches.flat()).toHaveLength(6);
  });

  it('holds submitters when the pipeline is full instead of growing without bound', async () => {
    const g = gate();
    const ingest = createIngest({ write: g.write, batchSize: 2, batchDelayMs: 0, maxPending: 4 });
    const subs = Array.from({ length: 10 }, (_, i) => ingest.submit([row(`v${i}`)]));
    const first = await g.next();
    await new Promise((r) => setTimeout(r, 10));
    expect(ingest.stats().pendingValues).toBe(4);
    expect(ingest.stats().held).toBe(6);
    first.resolve();
    let done = false;
    void Promise.all(subs).then(() => (done = true));
    while (!done) {
      expect(ingest.stats().pendingValues).toBeLessThanOrEqual(4);
      await expect.poll(() => done || g.pending.length > 0).toBe(true);
      g.pending.shift()?.resolve();
    }
    expect(
      g.batches
        .flat()
        .map((r) => r.identifier)
        .sort(),
    ).toEqual(Array.from({ length: 10 }, (_, i) => `v${i}`).sort());
  });

  it('retries a batch while the database is unavailable and loses nothing', async () => {
    let failures = 3;
    const written: TelemetryRow[][] = [];
    const ingest = createIngest({
      write: async (rows) => {
        if (failures-- > 0) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
        written.push(rows);
      },
      batchDelayMs: 0,
      retryMinMs: 1,
      retryMaxMs: 5,
    });
    await Promise.all([ingest.submit([row('a')]), ingest.submit([row('b')])]);
    expect(written.flat().map((r) => r.identifier)).toEqual(['a', 'b']);
    expect(ingest.stats().retries).toBe(3);
  });

  it('fails only the submission the database refuses, writing the others', async () => {
    const written: string[] = [];
    const ingest = createIngest({
      write: async (rows) => {
        if (rows.some((r) => r.identifier === 'bad'))
          throw Object.assign(new Error('invalid input syntax'), { code: '22P02' });
        written.push(...rows.map((r) => r.identifier));
      },
      batchDelayMs: 5,
    });
    const results = await Promise.all([
      settle(ingest.submit([row('a')])),
      settle(ingest.submit([row('bad')])),
      settle(ingest.submit([row('c')])),
    ]);
    expect(results[0]).toBe('done');
    expect(results[1]).toMatchObject({ code: '22P02' });
    expect(results[2]).toBe('done');
    expect(written.sort()).toEqual(['a', 'c']);
  });

  it('flushes everything waiting on stop and refuses new submissions after', async () => {
    const written: string[] = [];
    const ingest = createIngest({
      write: async (rows) => void written.push(...rows.map((r) => r.identifier)),
      batchDelayMs: 60_000,
    });
    const sub = ingest.submit([row('a'), row('b')]);
    await ingest.stop();
    await sub;
    expect(written).toEqual(['a', 'b']);
    await expect(ingest.submit([row('c')])).rejects.toThrow(/stopped/);
  });

  it('tells connection failures from refused data', () => {
    expect(isTransientDbError(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(
      isTransientDbError(
        Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }),
      ),
    ).toBe(true);
    expect(
      isTransientDbError({
        message: 'Failed query',
        cause: Object.assign(new Error('write CONNECTION_CLOSED'), { code: 'CONNECTION_CLOSED' }),
      }),
    ).toBe(true);
    expect(isTransientDbError(Object.assign(new Error('duplicate key'), { code: '23505' }))).toBe(false);
    expect(isTransientDbError(new Error('invalid input syntax for type json'))).toBe(false);
  });
});

describe('receipts of QoS 1 reports (device-protocol.md §3.3)', () => {
  type Marks = { receipts: readonly string[]; release: readonly string[] };
  function recorder(refuse = new Set<string>()) {
    const writes: Array<{ batchId: string; marks: Marks; rows: TelemetryRow[] }> = [];
    const released: string[][] = [];
    return {
      writes,
      released,
      write: async (rows: TelemetryRow[], batchId: string, marks: Marks) => {
        writes.push({ batchId, marks, rows });
        if (rows.some((r) => refuse.has(r.identifier))) throw new Error('refused for its content');
      },
      releaseReceipts: async (ids: readonly string[]) => void released.push([...ids]),
    };
  }
  /** Submits and lets the fake clock run the batch delay. */
  async function submitted<T>(p: Promise<T>): Promise<T> {
    await vi.advanceTimersByTimeAsync(2);
    return p;
  }
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('writes a batch with its receipts, and has the first batch after the hold forget them', async () => {
    const r = recorder();
    const ingest = createIngest({ ...r, batchDelayMs: 1, receiptHoldMs: 1_000, isTransient: () => false });
    await submitted(
      Promise.all([
        ingest.submit([row('a')], { receipt: '11' }),
        ingest.submit([row('b')]),
        ingest.submit([row('c')], { receipt: '-12' }),
      ]),
    );
    expect(r.writes.map((w) => w.marks)).toEqual([{ receipts: ['11', '-12'], release: [] }]);
    // Within the hold a batch leaves them.
    await vi.advanceTimersByTimeAsync(900);
    await submitted(ingest.submit([row('d')]));
    expect(r.writes[1]!.marks).toEqual({ receipts: [], release: [] });
    await vi.advanceTimersByTimeAsync(200);
    await submitted(ingest.submit([row('e')], { receipt: '13' }));
    expect(r.writes[2]!.marks).toEqual({ receipts: ['13'], release: [r.writes[0]!.batchId] });
    expect(r.released).toEqual([]);
    await ingest.stop();
  });

  it('forgets at a stop those past their hold, and keeps those whose acknowledgements may not have left', async () => {
    const r = recorder();
    const ingest = createIngest({ ...r, batchDelayMs: 1, receiptHoldMs: 1_000, isTransient: () => false });
    await submitted(ingest.submit([row('a')], { receipt: '1' }));
    await vi.advanceTimersByTimeAsync(1_100);
    await submitted(ingest.submit([row('b')], { receipt: '2' }));
    // The second write released the first batch's receipts; the second's are within their hold.
    expect(r.writes[1]!.marks.release).toEqual([r.writes[0]!.batchId]);
    await vi.advanceTimersByTimeAsync(1_100);
    await submitted(ingest.submit([row('c')], { receipt: '3' }));
    await ingest.stop();
    // The third write released the second's; at the stop the third's are within their hold: kept.
    expect(r.writes[2]!.marks.release).toEqual([r.writes[1]!.batchId]);
    expect(r.released).toEqual([]);
  });

  it('forgets them by a statement of their own when no batch comes', async () => {
    const r = recorder();
    const ingest = createIngest({ ...r, batchDelayMs: 1, receiptHoldMs: 1_000, isTransient: () => false });
    await submitted(ingest.submit([row('a')], { receipt: '1' }));
    await vi.advanceTimersByTimeAsync(1_400);
    expect(r.released).toEqual([]);
    await vi.advanceTimersByTimeAsync(200);
    expect(r.released).toEqual([[r.writes[0]!.batchId]]);
    await ingest.stop();
  });

  it('keeps what a refused batch was to release for the next one, and splits receipts with the submissions', async () => {
    const r = recorder(new Set(['bad']));
    const ingest = createIngest({ ...r, batchDelayMs: 1, receiptHoldMs: 1_000, isTransient: () => false });
    await submitted(ingest.submit([row('a')], { receipt: '1' }));
    await vi.advanceTimersByTimeAsync(1_100);
    const bad = settle(ingest.submit([row('bad')], { receipt: '2' }));
    const good = settle(ingest.submit([row('ok')], { receipt: '3' }));
    expect(await submitted(Promise.all([bad, good]))).toEqual([expect.any(Error), 'done']);
    const first = r.writes[0]!.batchId;
    // The whole batch (refused, releasing the first), then one by one: the bad one alone, then the good one,
    // which releases the first batch's receipts after all.
    expect(r.writes.slice(1).map((w) => w.marks)).toEqual([
      { receipts: ['2', '3'], release: [first] },
      { receipts: ['2'], release: [first] },
      { receipts: ['3'], release: [first] },
    ]);
    expect(r.released).toEqual([]);
    await ingest.stop();
  });
});
