/**
 * Timers on the injected clock: persistence windows, offline and silence checks, webhook retries.
 * Tasks run when `clock()` has reached their time. Once started, a real (unref'd) timer wakes the
 * scheduler at the earliest task; tests leave it stopped, move their clock and call `runDue()`.
 */
export interface Scheduler {
  /** Runs `fn` once `clock() >= at`; returns a cancel function. */
  at(at: number, fn: () => void | Promise<void>): () => void;
  /** Runs every task that is due now (and those that become due while they run); resolves when they are done. */
  runDue(): Promise<void>;
  /** Tasks waiting. */
  readonly size: number;
  start(): void;
  stop(): void;
}

interface Task {
  at: number;
  seq: number;
  fn: () => void | Promise<void>;
  cancelled: boolean;
}

/** A binary min-heap on (at, seq): insertion order breaks ties. */
class Heap {
  private items: Task[] = [];
  get size() {
    return this.items.length;
  }
  peek(): Task | undefined {
    return this.items[0];
  }
  private less(a: Task, b: Task) {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }
  push(t: Task) {
    const h = this.items;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }
  pop(): Task | undefined {
    const h = this.items;
    const top = h[0];
    const last = h.pop();
    if (h.length && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

export interface SchedulerDeps {
  clock: () => number;
  onError?: (err: unknown) => void;
  /** Longest real wait between wake-ups, so a clock that jumps is noticed (ms). */
  maxWaitMs?: number;
}

export function createScheduler({ clock, onError = () => {}, maxWaitMs = 60_000 }: SchedulerDeps): Scheduler {
  const heap = new Heap();
  let seq = 0;
  let live = 0;
  let started = false;
  let timer: NodeJS.Timeout | undefined;
  let timerAt = Infinity;
  let running: Promise<void> | undefined;

  function arm() {
    if (!started) return;
    while (heap.peek()?.cancelled) heap.pop();
    const next = heap.peek();
    if (!next) {
      if (timer) clearTimeout(timer);
      timer = undefined;
      timerAt = Infinity;
      return;
    }
    if (timer && timerAt <= next.at) return;
    if (timer) clearTimeout(timer);
    timerAt = next.at;
    const wait = Math.min(Math.max(0, next.at - clock()), maxWaitMs);
    timer = setTimeout(() => {
      timer = undefined;
      timerAt = Infinity;
      void runDue();
    }, wait);
    timer.unref();
  }

  async function drain() {
    for (;;) {
      const next = heap.peek();
      if (!next) break;
      if (next.cancelled) {
        heap.pop();
        continue;
      }
      if (next.at > clock()) break;
      heap.pop();
      live--;
      next.cancelled = true;
      try {
        await next.fn();
      } catch (err) {
        onError(err);
      }
    }
  }

  function runDue(): Promise<void> {
    // One drain at a time; a call during a drain waits for it and drains again.
    const run = (running ?? Promise.resolve()).then(drain).finally(() => {
      if (running === run) running = undefined;
      arm();
    });
    running = run;
    return run;
  }

  return {
    at(at, fn) {
      const task: Task = { at, seq: seq++, fn, cancelled: false };
      heap.push(task);
      live++;
      arm();
      return () => {
        if (task.cancelled) return;
        task.cancelled = true;
        live--;
      };
    },
    runDue,
    get size() {
      return live;
    },
    start() {
      started = true;
      arm();
    },
    stop() {
      started = false;
      if (timer) clearTimeout(timer);
      timer = undefined;
      timerAt = Infinity;
    },
  };
}
