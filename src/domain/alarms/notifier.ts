import { createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import type { AlarmsRepository, NotificationTargetRow } from '../../db/repositories/alarms.repository.ts';
import type { NotifyAttempt } from '../../db/schema.ts';
import type { AlarmEntry } from './alarm-engine.ts';
import type { Scheduler } from './scheduler.ts';

export interface NotifierSettings {
  /** How long one delivery may take (ms). */
  timeoutMs: number;
  /** Attempts per entry and target, the first included. */
  maxAttempts: number;
  /** Wait before the first retry; doubled for each further one (ms). */
  backoffMs: number;
  /** Deliveries waiting, running or scheduled for a retry, at most; beyond it new ones are dropped (and recorded). */
  maxPending: number;
  /** Deliveries at once. */
  concurrency: number;
}

export const DEFAULT_NOTIFIER_SETTINGS: NotifierSettings = { timeoutMs: 5_000, maxAttempts: 5, backoffMs: 2_000, maxPending: 10_000, concurrency: 4 };

export interface NotifierDeps {
  repo: Pick<AlarmsRepository, 'listTargets' | 'appendNotify'>;
  scheduler: Scheduler;
  clock: () => number;
  logger: Pick<Logger, 'warn' | 'error'>;
  settings?: Partial<NotifierSettings>;
  fetch?: typeof fetch;
}

interface Job {
  target: NotificationTargetRow;
  logId: string;
  body: string;
  attempt: number;
}

/** `sha256=<hex>` of HMAC-SHA256 over `<timestamp>.<raw body>` with the target's secret. */
export function signature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** The JSON a webhook receives for one alarm-log entry. */
export function webhookPayload(projectId: string, entry: AlarmEntry) {
  const { log, device } = entry;
  return {
    event: 'alarm',
    project_id: projectId,
    alarm: {
      id: log.id,
      device_id: log.deviceId,
      device,
      rule_id: log.ruleId,
      alarm_status: log.alarmStatus,
      alarm_level: log.alarmLevel,
      alarm_info: log.alarmInfo,
      create_time: log.createTime,
    },
  };
}

/** 408, 429 and 5xx are worth another try; other answers are final. */
const retryable = (status: number) => status === 408 || status === 429 || status >= 500;

/**
 * Delivers alarm-log entries to the project's webhooks off the evaluation path: a bounded queue,
 * a few deliveries at once, a timeout per delivery, retries with exponential back-off on the
 * injected clock. Every attempt is appended to the entry's `notify_logs`.
 */
export function createNotifier({ repo, scheduler, clock, logger, settings: given = {}, fetch: fetchImpl = fetch }: NotifierDeps) {
  const settings = { ...DEFAULT_NOTIFIER_SETTINGS, ...given };
  const targetsCache = new Map<string, Promise<NotificationTargetRow[]>>();
  const queue: Job[] = [];
  let running = 0;
  /** Queued + running + waiting for a retry. */
  let pending = 0;
  let stopped = false;
  /** notify() calls still reading their targets. */
  let resolving = 0;
  let idleWaiters: Array<() => void> = [];

  function targetsOf(projectId: string) {
    let t = targetsCache.get(projectId);
    if (!t) {
      t = repo.listTargets(projectId).then((rows) => rows.filter((r) => r.enabled));
      t.catch(() => targetsCache.delete(projectId));
      targetsCache.set(projectId, t);
    }
    return t;
  }

  async function record(logId: string, attempt: NotifyAttempt) {
    try {
      await repo.appendNotify(logId, attempt);
    } catch (err) {
      logger.error({ err: { message: (err as Error)?.message }, logId }, 'notification attempt not recorded');
    }
  }

  const isIdle = () => running === 0 && queue.length === 0 && resolving === 0;

  function settle() {
    if (isIdle()) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  function pump() {
    while (!stopped && running < settings.concurrency && queue.length) {
      const job = queue.shift()!;
      running++;
      void deliver(job).finally(() => {
        running--;
        pump();
        settle();
      });
    }
  }

  async function deliver(job: Job) {
    const { target } = job;
    const timestamp = String(clock());
    let status: number | undefined;
    let error: string | undefined;
    try {
      const res = await fetchImpl(target.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'iot-cloud-alarms/1',
          'x-timestamp': timestamp,
          'x-signature': signature(target.secret, timestamp, job.body),
          'x-alarm-id': job.logId,
          'x-delivery-attempt': String(job.attempt),
        },
        body: job.body,
        redirect: 'manual',
        signal: AbortSignal.timeout(settings.timeoutMs),
      });
      status = res.status;
      // The body is not needed; reading it frees the connection.
      await res.arrayBuffer().catch(() => undefined);
      if (status < 200 || status >= 300) error = `HTTP ${status}`;
    } catch (err) {
      const e = err as Error;
      error = e?.name === 'TimeoutError' ? `timed out after ${settings.timeoutMs} ms` : (e?.message ?? String(err));
      const cause = (e as { cause?: { code?: string } })?.cause?.code;
      if (cause) error = `${error} (${cause})`;
    }
    const time = clock();
    const base = { target: target.id, time, attempt: job.attempt, ...(status !== undefined ? { http_status: status } : {}) };
    if (!error) {
      pending--;
      await record(job.logId, { ...base, status: 'delivered' });
      return;
    }
    const again = job.attempt < settings.maxAttempts && (status === undefined || retryable(status)) && !stopped;
    if (!again) {
      pending--;
      await record(job.logId, { ...base, status: 'failed', error });
      logger.warn({ target: target.id, logId: job.logId, attempt: job.attempt, error }, 'alarm notification failed');
      return;
    }
    const next = time + settings.backoffMs * 2 ** (job.attempt - 1);
    await record(job.logId, { ...base, status: 'failed', error, next_attempt_time: next });
    scheduler.at(next, () => {
      if (stopped) {
        pending--;
        return;
      }
      queue.push({ ...job, attempt: job.attempt + 1 });
      pump();
    });
  }

  return {
    /** Sends the entry to the project's enabled targets of its level; returns at once. */
    notify(projectId: string, entry: AlarmEntry) {
      if (stopped) return;
      resolving++;
      void targetsOf(projectId)
        .then(async (targets) => {
          const body = JSON.stringify(webhookPayload(projectId, entry));
          for (const target of targets) {
            if (entry.log.alarmLevel < target.minLevel) continue;
            if (pending >= settings.maxPending) {
              await record(entry.log.id, { target: target.id, time: clock(), attempt: 0, status: 'dropped', error: `more than ${settings.maxPending} notifications pending` });
              continue;
            }
            pending++;
            queue.push({ target, logId: entry.log.id, body, attempt: 1 });
          }
          pump();
        })
        .catch((err: unknown) => logger.error({ err: { message: (err as Error)?.message }, projectId }, 'notification targets not read'))
        .finally(() => {
          resolving--;
          settle();
        });
    },

    /** A target was created, changed or deleted. */
    targetsChanged(projectId: string) {
      targetsCache.delete(projectId);
    },

    /** Resolves once no delivery is queued or running (retries waiting on the clock excepted). */
    idle(): Promise<void> {
      return new Promise<void>((resolve) => {
        if (isIdle()) resolve();
        else idleWaiters.push(resolve);
      });
    },

    get pending() {
      return pending;
    },

    /** Stops taking work; waits for running deliveries (bounded by their timeout). Queued ones are dropped. */
    async stop() {
      stopped = true;
      pending -= queue.length;
      queue.length = 0;
      await new Promise<void>((resolve) => {
        if (running === 0) resolve();
        else idleWaiters.push(resolve);
      });
    },
  };
}
export type Notifier = ReturnType<typeof createNotifier>;
