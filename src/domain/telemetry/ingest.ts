import { randomUUID } from 'node:crypto';
import type { BatchMarks, TelemetryRow } from '../../db/repositories/history.repository.ts';
import { isTransientDbError } from '../../db/errors.ts';
import type { MetricsPort } from '../metrics-port.ts';

/**
 * The telemetry ingest pipeline (architecture.md §8, §11): every attribute value — reported over MQTT, HTTP, TCP
 * streams or by a gateway, pushed, or set in the cloud — is submitted here. Submissions are gathered
 * into batches (bounded by size and delay) and written in one transaction per batch; a submission
 * resolves only after its batch committed (group commit), so a QoS 1 PUBACK means "durable".
 *
 * Back-pressure: at most `maxPending` values wait; beyond that `submit` waits for room, which stops
 * the caller (the broker stops reading that connection) instead of growing memory. A failing
 * database is retried with back-off until it answers again; nothing waiting is dropped. A batch that
 * the database refuses for its content is split, so only the offending submission fails.
 */
/**
 * How long the receipts of a batch whose acknowledgements may not have reached their devices are matched
 * against resends (device-protocol.md §3.3): a device that lost its node reconnects and resends within this.
 */
export const RECEIPT_WINDOW_MS = 2 * 60_000;
/** With no batch delay and a writer busy, how long what arrives waits for it before another writer may start. */
const WRITER_PATIENCE_MS = 5;
/** How soon receipts that could not be released are tried again. */
const RELEASE_RETRY_MS = 5_000;

export interface IngestOptions<T = TelemetryRow> {
  /**
   * Writes one batch durably (one transaction). `batchId` names the write (the same for its retries):
   * a writer that records it with the batch lets `committed` tell a lost answer from a lost write.
   * `marks`: the receipts of its QoS 1 reports and the earlier batches whose receipts can go, recorded in the
   * same transaction (device-protocol.md §3.3).
   */
  write(rows: T[], batchId: string, marks: BatchMarks): Promise<void>;
  /** Forgets the receipts of batches whose acknowledgements are out, when no batch came to do it. */
  releaseReceipts?(batchIds: readonly string[]): Promise<void>;
  /**
   * How long a batch's receipts are kept after it committed, in ms: its acknowledgements go out at once, and
   * this is the margin for them to reach their devices. Default 1,000.
   */
  receiptHoldMs?: number;
  /**
   * Whether the write named `batchId` committed: asked after a connection was lost mid-write, before
   * writing again, so a batch whose commit's answer was lost is not written twice.
   */
  committed?(batchId: string): Promise<boolean>;
  /** Whether a write failed because its batch's commit record exists already (then it committed before). */
  isCommitConflict?(err: unknown): boolean;
  /** Most values per batch. */
  batchSize?: number;
  /** Longest a value waits for its batch to fill, in ms. */
  batchDelayMs?: number;
  /** Most values waiting before submitters are held. */
  maxPending?: number;
  /** Batches written at the same time (PostgreSQL: one connection each). */
  concurrency?: number;
  /**
   * Whether an error is the database being unavailable (retry) rather than refusing the data; by default
   * the database boundary's `isTransientDbError`.
   */
  isTransient?: (err: unknown) => boolean;
  logger?: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
  /** Told the time of each committed batch (docs/metrics.md); unset = not measured. */
  metrics?: Pick<MetricsPort, 'ingestBatch'>;
  /** Retry back-off bounds in ms. */
  retryMinMs?: number;
  retryMaxMs?: number;
}

interface Pending<T> {
  rows: T[];
  /** The receipt of the QoS 1 report these rows are (device-protocol.md §3.3). */
  receipt: string | undefined;
  resolve(): void;
  reject(err: unknown): void;
}

export interface IngestStats {
  pendingValues: number;
  batches: number;
  values: number;
  retries: number;
  /** Submitters waiting for room. */
  held: number;
}

/** The pipeline for telemetry rows by default; any row type with its own `write` (custom-data messages). */
export function createIngest<T = TelemetryRow>(options: IngestOptions<T>) {
  const batchSize = options.batchSize ?? 5_000;
  const batchDelayMs = options.batchDelayMs ?? 5;
  const maxPending = Math.max(options.maxPending ?? 100_000, batchSize);
  const concurrency = Math.max(1, options.concurrency ?? 1);
  const isTransient = options.isTransient ?? isTransientDbError;
  const retryMinMs = options.retryMinMs ?? 50;
  const metrics = options.metrics;
  const retryMaxMs = options.retryMaxMs ?? 5_000;
  const log = options.logger;

  const queue: Pending<T>[] = [];
  /** Values submitted and not yet written (queued or being written): what back-pressure bounds. */
  let pendingValues = 0;
  /** Values queued and not yet taken into a batch: what starts a writer. */
  let queuedValues = 0;
  let timer: NodeJS.Timeout | undefined;
  /** A batch to start once this turn's arrivals are in (`batchDelayMs` 0). */
  let soon: NodeJS.Immediate | undefined;
  /** Writers running; each takes batches until the queue is empty. */
  let workers = 0;
  const waitingForRoom: Array<() => void> = [];
  const drainedWaiters: Array<() => void> = [];
  const stats = { batches: 0, values: 0, retries: 0 };
  let stopped = false;
  const receiptHoldMs = options.receiptHoldMs ?? 1_000;
  /** Committed batches with receipts, oldest first, and when their receipts may go. */
  const held: Array<{ batchId: string; releaseAt: number }> = [];
  /** Batches whose receipts may go, waiting for the next write (or the release timer) to forget them. */
  let releasable: string[] = [];
  let releaseTimer: NodeJS.Timeout | undefined;

  function schedule() {
    if (workers >= concurrency || !queue.length) return;
    if (queuedValues >= batchSize) {
      start();
    } else if (batchDelayMs === 0) {
      // Group commit without a wait: the batch starts once the messages read in this turn of the event loop
      // are queued, and whatever arrives while it is written joins the next one (architecture.md §8). While a
      // writer runs, it takes them when its batch is done: another writer starts only for a full batch (above),
      // so `concurrency` adds writes in flight under load, not many small batches at a light one. A write that
      // takes long (a lock wait, a retry, a refused batch written one by one) lets another writer start after
      // WRITER_PATIENCE_MS instead of holding them back for its whole time.
      if (workers > 0) {
        timer ??= setTimeout(() => {
          timer = undefined;
          start();
        }, WRITER_PATIENCE_MS);
        return;
      }
      soon ??= setImmediate(() => {
        soon = undefined;
        start();
      });
    } else {
      timer ??= setTimeout(() => {
        timer = undefined;
        start();
      }, batchDelayMs);
    }
  }

  function start() {
    if (workers >= concurrency || !queue.length) return;
    if (timer) {
      clearTimeout(timer);
      timer = undefined;
    }
    if (soon) {
      clearImmediate(soon);
      soon = undefined;
    }
    workers += 1;
    void flushLoop().finally(() => {
      workers -= 1;
      if (queue.length) schedule();
      else if (workers === 0) for (const w of drainedWaiters.splice(0)) w();
    });
  }

  function take(): Pending<T>[] {
    const batch: Pending<T>[] = [];
    let n = 0;
    while (queue.length && (n === 0 || n + queue[0]!.rows.length <= batchSize)) {
      const p = queue.shift()!;
      batch.push(p);
      n += p.rows.length;
    }
    queuedValues -= n;
    return batch;
  }

  function release(batch: Pending<T>[]) {
    for (const p of batch) pendingValues -= p.rows.length;
    while (waitingForRoom.length && pendingValues < maxPending) waitingForRoom.shift()!();
  }

  const receiptsOf = (batch: Pending<T>[]): string[] => {
    const keys: string[] = [];
    for (const p of batch) if (p.receipt !== undefined) keys.push(p.receipt);
    return keys;
  };

  const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref?.());

  /** The batches whose receipts may go now, taken for a write. */
  function takeReleasable(): string[] {
    const now = Date.now();
    while (held.length && held[0]!.releaseAt <= now) releasable.push(held.shift()!.batchId);
    const taken = releasable;
    releasable = [];
    return taken;
  }

  /** Keeps a committed batch's receipts for `receiptHoldMs`, then lets the next write (or the timer) forget them. */
  function hold(batchId: string) {
    held.push({ batchId, releaseAt: Date.now() + receiptHoldMs });
    armRelease();
  }

  function armRelease() {
    if (releaseTimer || stopped || (!held.length && !releasable.length) || !options.releaseReceipts) return;
    const due = held.length ? Math.max(0, held[0]!.releaseAt - Date.now()) : 0;
    // A margin past the hold, so a busy pipeline's next write forgets them first (no statement of its own).
    releaseTimer = setTimeout(releaseIdle, due + receiptHoldMs / 2);
    releaseTimer.unref?.();
  }

  function releaseIdle() {
    releaseTimer = undefined;
    const ids = takeReleasable();
    if (!ids.length) return armRelease();
    options.releaseReceipts!(ids).then(
      () => armRelease(),
      (err: unknown) => {
        // Tried again by the next write or in a few seconds: receipts kept longer widen the time a resend is
        // matched (device-protocol.md §3.3).
        releasable.push(...ids);
        if (stopped) return;
        log?.warn({ err, batches: ids.length }, 'report receipts not released; trying again');
        if (releaseTimer) clearTimeout(releaseTimer);
        releaseTimer = setTimeout(releaseIdle, RELEASE_RETRY_MS);
        releaseTimer.unref?.();
      },
    );
  }

  /** Writes until the database answers; returns the error when it refuses the data. */
  async function writeDurably(rows: T[], receipts: string[]): Promise<unknown> {
    const batchId = randomUUID();
    const marks: BatchMarks = { receipts, release: takeReleasable() };
    const err = await writeOnce(rows, batchId, marks);
    // Refused: the batches it was to release wait for the next write.
    if (err) releasable.push(...marks.release);
    else if (receipts.length) hold(batchId);
    return err;
  }

  async function writeOnce(rows: T[], batchId: string, marks: BatchMarks): Promise<unknown> {
    let delay = retryMinMs;
    for (let attempt = 0; ; attempt++) {
      try {
        // A retry first asks whether the lost attempt committed (its answer may be what was lost); while
        // that cannot be known (the database is still away) this throws and the loop waits again: never a
        // blind second write.
        if (attempt > 0 && options.committed && (await options.committed(batchId))) return undefined;
        await options.write(rows, batchId, marks);
        return undefined;
      } catch (err) {
        // The batch's own commit record exists: an earlier attempt committed after all.
        if (attempt > 0 && options.isCommitConflict?.(err)) return undefined;
        if (!isTransient(err)) return err;
        stats.retries += 1;
        log?.warn(
          { err, retryInMs: delay, values: rows.length },
          'telemetry write failed: database unavailable, retrying',
        );
        await sleep(delay);
        delay = Math.min(retryMaxMs, delay * 2);
      }
    }
  }

  async function flushLoop() {
    while (queue.length) {
      const batch = take();
      const rows = batch.flatMap((p) => p.rows);
      const began = metrics ? performance.now() : 0;
      const err = await writeDurably(rows, receiptsOf(batch));
      if (!err) {
        metrics?.ingestBatch((performance.now() - began) / 1000);
        stats.batches += 1;
        stats.values += rows.length;
        release(batch);
        for (const p of batch) p.resolve();
        continue;
      }
      // The data was refused: find the submissions at fault, one by one.
      if (batch.length === 1) {
        release(batch);
        batch[0]!.reject(err);
        continue;
      }
      log?.error({ err, submissions: batch.length }, 'telemetry batch refused; writing its submissions one by one');
      for (const p of batch) {
        const began = metrics ? performance.now() : 0;
        const one = await writeDurably(p.rows, receiptsOf([p]));
        release([p]);
        if (one) p.reject(one);
        else {
          metrics?.ingestBatch((performance.now() - began) / 1000);
          stats.batches += 1;
          stats.values += p.rows.length;
          p.resolve();
        }
      }
    }
  }

  /**
   * Resolves when the rows are durable; waits first while the pipeline is full. One promise per submission.
   * `now`: a person is waiting for this write (a push or a cloud attribute set over HTTP), so its batch
   * starts at once instead of waiting `batchDelayMs` to fill; while a batch is being written it joins the
   * next one, as every submission does (architecture.md §8).
   */
  function submit(rows: T[], opts?: { now?: boolean; receipt?: string }): Promise<void> {
    if (!rows.length) return Promise.resolve();
    if (stopped) return Promise.reject(new Error('telemetry ingest is stopped'));
    if (pendingValues >= maxPending)
      return new Promise<void>((r) => waitingForRoom.push(r)).then(() => submit(rows, opts));
    pendingValues += rows.length;
    queuedValues += rows.length;
    const receipt = opts?.receipt;
    const done = new Promise<void>((resolve, reject) => queue.push({ rows, receipt, resolve, reject }));
    if (opts?.now) start();
    else schedule();
    return done;
  }

  return {
    submit,

    /** Writes everything waiting now (graceful stop, tests). */
    async flush(): Promise<void> {
      if (!queue.length && !workers) return;
      const drained = new Promise<void>((r) => drainedWaiters.push(r));
      start();
      await drained;
    },

    /** Refuses new submissions and writes what is waiting. */
    async stop(): Promise<void> {
      stopped = true;
      await this.flush();
      if (releaseTimer) clearTimeout(releaseTimer);
      releaseTimer = undefined;
      // Those past their hold go; the others stay: the connections closed right after their batches' writes,
      // and acknowledgements still buffered were lost with them (the devices send those reports again).
      const ids = takeReleasable();
      if (ids.length && options.releaseReceipts)
        await options
          .releaseReceipts(ids)
          .catch((err: unknown) => log?.warn({ err, batches: ids.length }, 'report receipts not released at stop'));
    },

    stats(): IngestStats {
      return { pendingValues, ...stats, held: waitingForRoom.length };
    },
  };
}
export type Ingest<T = TelemetryRow> = ReturnType<typeof createIngest<T>>;
