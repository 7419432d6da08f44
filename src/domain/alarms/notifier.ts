import { createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import type { AlarmsRepository, NotificationTargetRow } from '../../db/repositories/alarms.repository.ts';
import type { NewNotifyJob, NotifyJobRow, NotifyJobsRepository } from '../../db/repositories/notify-jobs.repository.ts';
import type { NotifyAttempt } from '../../db/schema/index.ts';
import { newId } from '../../lib/ids.ts';
import { createNetGuard, parseNetworks, type NetGuard, type Resolver } from '../../lib/net-guard.ts';
import { TtlCache } from '../../lib/ttl-cache.ts';
import type { AlarmEntry } from './alarm-engine.ts';
import type { MetricsPort, WebhookResult } from '../metrics-port.ts';
import type { Scheduler } from './scheduler.ts';
import { DeliveryError, postWebhook } from './webhook-client.ts';

export interface NotifierSettings {
  /** How long one delivery may take, name resolution included (ms). */
  timeoutMs: number;
  /** Attempts per entry and target, the first included. */
  maxAttempts: number;
  /** Wait before the first retry; doubled for each further one (ms). */
  backoffMs: number;
  /** Deliveries waiting, running or scheduled for a retry, at most, all projects together; beyond it new ones are dropped (and recorded). */
  maxPending: number;
  /** The same bound for one project. */
  projectMaxPending: number;
  /** Deliveries at once, all projects together. */
  concurrency: number;
  /** Deliveries of one project at once: a project whose targets hang holds no more than these. */
  projectConcurrency: number;
  /** Consecutive failed attempts of a target that open its circuit breaker. */
  breakerFailures: number;
  /** How long an open breaker skips the target's deliveries (ms). */
  breakerCooldownMs: number;
  /** Comma-separated CIDR networks webhooks may reach although they are not public (e.g. `10.20.0.0/16`). */
  allowNetworks: string;
  /** Name resolution (the system resolver by default; tests inject one). */
  resolve?: Resolver;
}

export const DEFAULT_NOTIFIER_SETTINGS: NotifierSettings = {
  timeoutMs: 5_000,
  maxAttempts: 5,
  backoffMs: 2_000,
  maxPending: 10_000,
  projectMaxPending: 1_000,
  concurrency: 8,
  projectConcurrency: 2,
  breakerFailures: 5,
  breakerCooldownMs: 60_000,
  allowNetworks: '',
};

/** The guard webhook targets pass, from the settings (the service checks URLs with the same one). */
export function notifierGuard(settings: Partial<NotifierSettings> = {}): NetGuard {
  return createNetGuard({
    allow: parseNetworks(settings.allowNetworks ?? ''),
    ...(settings.resolve ? { resolve: settings.resolve } : {}),
  });
}

export interface NotifierDeps {
  repo: Pick<AlarmsRepository, 'listTargets' | 'appendNotify'>;
  jobs: NotifyJobsRepository;
  scheduler: Scheduler;
  clock: () => number;
  logger: Pick<Logger, 'warn' | 'error'>;
  settings?: Partial<NotifierSettings>;
  guard?: NetGuard;
  /**
   * Cluster mode, job claims (docs/cluster.md §4): the name this node writes into `notify_jobs.claimed_by`,
   * how long a claim holds without renewal, and how many jobs one take-over claims at most (default 1,000).
   * A job runs on the node that claims it; claims are renewed while the job is queued, running or waiting
   * for a retry, so a dead node's jobs lapse and another node takes them over. Unset (one node): nothing is
   * claimed; every stored job is this node's, all taken up at start.
   */
  claims?: { node: string; claimMs: number; batch?: number };
  /** Counts each delivery attempt by its result (docs/metrics.md); unset = not counted. */
  metrics?: Pick<MetricsPort, 'webhookDelivery'>;
}

type Job = Omit<NotifyJobRow, 'dueTime' | 'createTime' | 'claimedBy' | 'claimUntil'>;

/** One project's share of the notifier. */
interface ProjectQueue {
  queue: Job[];
  running: number;
  /** Queued + running + waiting for a retry. */
  pending: number;
  /** In the round-robin ring. */
  ringed: boolean;
}

/** An attempt's result for `iot_webhook_deliveries_total`: a failure with a next attempt is a retry. */
function resultOf(attempt: NotifyAttempt): WebhookResult {
  if (attempt.status === 'delivered') return 'ok';
  if (attempt.status === 'failed') return attempt.next_attempt_time !== undefined ? 'retried' : 'failed';
  // Dropped (too many pending) or skipped (the target's circuit is open): never sent.
  return 'dropped';
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
 * Delivers alarm-log entries to the project's webhooks off the evaluation path. Each project has its
 * own queue and limits (pending jobs, deliveries at once); free delivery slots go round-robin across
 * the projects with work, so one project's slow targets cannot hold up another's. Every delivery is
 * kept in `notify_jobs` until it is done, so retries survive a restart. A target that keeps failing
 * has its circuit opened for a cool-down. Every attempt is appended to the entry's `notify_logs`.
 */
export function createNotifier({
  repo,
  jobs,
  scheduler,
  clock,
  logger,
  settings: given = {},
  guard = notifierGuard(given),
  claims,
  metrics,
}: NotifierDeps) {
  const settings = { ...DEFAULT_NOTIFIER_SETTINGS, ...given };
  const batch = Math.max(1, claims?.batch ?? 1_000);
  /** Jobs this node holds (queued, running or waiting for a retry), by id: their claims are renewed. */
  const held = new Map<string, Job>();
  let claimTimer: NodeJS.Timeout | undefined;
  let claiming: Promise<void> | undefined;
  const targets = new TtlCache<NotificationTargetRow[]>(60_000, clock);
  const projects = new Map<string, ProjectQueue>();
  /** Projects with queued jobs, in turn order. */
  const ring: string[] = [];
  /** Retries waiting on the clock, by job id. */
  const waiting = new Map<string, { job: Job; cancel: () => void }>();
  /** Per target: consecutive failed attempts, and until when its circuit is open. */
  const breakers = new Map<string, { failures: number; openUntil: number }>();
  let running = 0;
  let pending = 0;
  let stopped = false;
  /** notify() and recover() calls still reading or writing. */
  let resolving = 0;
  let idleWaiters: Array<() => void> = [];

  const targetsOf = (projectId: string) =>
    targets.get(projectId, '', () => repo.listTargets(projectId).then((rows) => rows.filter((r) => r.enabled)));

  function projectOf(projectId: string): ProjectQueue {
    let p = projects.get(projectId);
    if (!p) {
      p = { queue: [], running: 0, pending: 0, ringed: false };
      projects.set(projectId, p);
    }
    return p;
  }

  /** Every attempt passes here, whatever became of it: one place counts them (docs/metrics.md). */
  async function record(logId: string, attempt: NotifyAttempt) {
    metrics?.webhookDelivery(resultOf(attempt));
    try {
      await repo.appendNotify(logId, attempt);
    } catch (err) {
      logger.error({ err, logId }, 'notification attempt not recorded');
    }
  }

  async function persist(what: string, fn: () => Promise<void>) {
    try {
      await fn();
    } catch (err) {
      logger.error({ err }, `notification job not ${what}`);
    }
  }

  const isIdle = () => running === 0 && ring.length === 0 && resolving === 0;

  function settle() {
    if (isIdle()) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  function enqueue(job: Job) {
    const p = projectOf(job.projectId);
    p.queue.push(job);
    if (!p.ringed) {
      p.ringed = true;
      ring.push(job.projectId);
    }
  }

  /** A job is done (delivered, given up, skipped or purged): it no longer counts. */
  function release(job: Job) {
    held.delete(job.id);
    pending--;
    const p = projects.get(job.projectId);
    if (!p) return;
    p.pending--;
  }

  /** Starts deliveries while slots are free: the next project in turn that is under its own limit. */
  function pump() {
    let skipped = 0;
    while (!stopped && running < settings.concurrency && ring.length > skipped) {
      const projectId = ring.shift()!;
      const p = projects.get(projectId)!;
      if (p.running >= settings.projectConcurrency) {
        ring.push(projectId);
        skipped++;
        continue;
      }
      skipped = 0;
      const job = p.queue.shift();
      if (!job) {
        p.ringed = false;
        continue;
      }
      if (p.queue.length) ring.push(projectId);
      else p.ringed = false;
      p.running++;
      running++;
      void deliver(job).finally(() => {
        p.running--;
        running--;
        pump();
        settle();
      });
    }
  }

  async function finish(job: Job) {
    release(job);
    await persist('removed', () => jobs.deleteJob(job.projectId, job.id));
  }

  async function deliver(job: Job) {
    if (claims) {
      // Cluster mode: the job runs here only while its claim is this node's (docs/cluster.md §4): another
      // node took it over (this node's renewals failed) or it went with its target. When the database does
      // not answer, the delivery goes ahead as before claims.
      const claimed = await jobs
        .claimJob(job.projectId, job.id, claims.node, clock() + claims.claimMs, clock())
        .catch((err: unknown) => {
          logger.warn({ err }, 'notification job claim not confirmed');
          return true as const;
        });
      if (!claimed) return release(job);
    }
    const target = (await targetsOf(job.projectId).catch(() => undefined))?.find((t) => t.id === job.targetId);
    // Deleted or disabled since it was queued: the job goes with it.
    if (!target) return finish(job);
    const breaker = breakers.get(target.id);
    if (breaker && breaker.openUntil > clock()) {
      await record(job.logId, {
        target: target.id,
        time: clock(),
        attempt: job.attempt,
        status: 'skipped',
        error: 'circuit open',
      });
      return finish(job);
    }
    const timestamp = String(clock());
    let status: number | undefined;
    let error: string | undefined;
    /** The exception behind `error`, kept for the log. */
    let cause: unknown;
    let final = false;
    try {
      status = await postWebhook(guard, {
        url: target.url,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'iot-cloud-alarms/1',
          'x-timestamp': timestamp,
          'x-signature': signature(target.secret, timestamp, job.body),
          'x-alarm-id': job.logId,
          'x-delivery-attempt': String(job.attempt),
        },
        body: job.body,
        timeoutMs: settings.timeoutMs,
      });
      if (status < 200 || status >= 300) error = `HTTP ${status}`;
    } catch (err) {
      cause = err;
      error = err instanceof DeliveryError ? err.reason : 'connection failed';
      // A refused address is the target's configuration, not a passing fault.
      final = error === 'address not allowed';
    }
    const time = clock();
    const base = {
      target: target.id,
      time,
      attempt: job.attempt,
      ...(status !== undefined ? { http_status: status } : {}),
    };
    if (!error) {
      breakers.delete(target.id);
      await record(job.logId, { ...base, status: 'delivered' });
      return finish(job);
    }
    const b = breakers.get(target.id) ?? { failures: 0, openUntil: 0 };
    b.failures++;
    if (b.failures >= settings.breakerFailures) b.openUntil = time + settings.breakerCooldownMs;
    breakers.set(target.id, b);
    if (final || job.attempt >= settings.maxAttempts || (status !== undefined && !retryable(status))) {
      await record(job.logId, { ...base, status: 'failed', error });
      logger.warn(
        {
          target: target.id,
          logId: job.logId,
          attempt: job.attempt,
          error,
          ...(cause !== undefined ? { err: cause } : {}),
        },
        'alarm notification failed',
      );
      return finish(job);
    }
    const next = time + settings.backoffMs * 2 ** (job.attempt - 1);
    const retry = { ...job, attempt: job.attempt + 1 };
    await record(job.logId, { ...base, status: 'failed', error, next_attempt_time: next });
    await persist('rescheduled', () => jobs.rescheduleJob(job.projectId, job.id, retry.attempt, next));
    // Stopping: the job stays in notify_jobs and is taken up again at the next start.
    if (stopped) return;
    wait(retry, next);
  }

  function wait(job: Job, at: number) {
    const cancel = scheduler.at(at, () => {
      waiting.delete(job.id);
      if (stopped) return;
      enqueue(job);
      pump();
    });
    waiting.set(job.id, { job, cancel });
  }

  /** Takes up a job read back from `notify_jobs` or just stored (counted already). */
  function resume(row: NewNotifyJob) {
    const job: Job = {
      id: row.id,
      projectId: row.projectId,
      targetId: row.targetId,
      logId: row.logId,
      body: row.body,
      attempt: row.attempt,
    };
    held.set(job.id, job);
    if (row.dueTime <= clock()) enqueue(job);
    else wait(job, row.dueTime);
  }

  /** Forgets a job's queued or waiting delivery, in memory only (its target went, or another node holds it now). */
  function drop(match: (j: Job) => boolean) {
    for (const [projectId, p] of projects) {
      const gone = p.queue.filter(match);
      if (!gone.length) continue;
      p.queue = p.queue.filter((j) => !match(j));
      if (!p.queue.length && p.ringed) {
        p.ringed = false;
        ring.splice(ring.indexOf(projectId), 1);
      }
      for (const j of gone) release(j);
    }
    for (const [id, w] of waiting) {
      if (!match(w.job)) continue;
      w.cancel();
      waiting.delete(id);
      release(w.job);
    }
  }

  /** Takes up stored jobs (read back at start, or taken over): counted, then queued or waiting. */
  function takeUp(rows: NewNotifyJob[]) {
    let taken = 0;
    for (const row of rows) {
      if (stopped || held.has(row.id)) continue;
      pending++;
      projectOf(row.projectId).pending++;
      resume(row);
      taken++;
    }
    if (taken) pump();
  }

  /**
   * Cluster mode: takes the jobs nobody holds (a dead node's, whose claims lapsed), `batch` at most; with
   * `own` (at start), also this node's of a former run, batch after batch until all are taken.
   */
  async function takeOver(c: NonNullable<NotifierDeps['claims']>, own: boolean) {
    let after: string | undefined;
    for (;;) {
      const rows = await jobs.claimLapsed(c.node, clock() + c.claimMs, clock(), { own, limit: batch, after });
      takeUp(rows);
      if (!own || stopped || rows.length < batch) return;
      after = rows[rows.length - 1]!.id;
    }
  }

  /** Renews this node's claims; jobs another node took meanwhile are dropped here. Then takes over lapsed ones. */
  async function renew(c: NonNullable<NotifierDeps['claims']>) {
    const ids = [...held.keys()];
    const kept = new Set(await jobs.renewClaims(c.node, ids, clock() + c.claimMs));
    const lost = new Set(ids.filter((id) => !kept.has(id) && held.has(id)));
    if (lost.size) {
      logger.warn({ jobs: lost.size }, 'notification jobs claimed by another node; dropped here');
      drop((j) => lost.has(j.id));
      settle();
    }
    await takeOver(c, false);
  }

  function track<T>(work: Promise<T>): Promise<T> {
    resolving++;
    return work.finally(() => {
      resolving--;
      settle();
    });
  }

  return {
    guard,

    /** Sends the entry to the project's enabled targets of its level; returns at once. */
    notify(projectId: string, entry: AlarmEntry) {
      if (stopped) return;
      void track(
        targetsOf(projectId).then(async (list) => {
          const body = JSON.stringify(webhookPayload(projectId, entry));
          const now = clock();
          const p = projectOf(projectId);
          const rows: NewNotifyJob[] = [];
          for (const target of list) {
            if (entry.log.alarmLevel < target.minLevel) continue;
            const full =
              p.pending >= settings.projectMaxPending
                ? settings.projectMaxPending
                : pending >= settings.maxPending
                  ? settings.maxPending
                  : 0;
            if (full) {
              await record(entry.log.id, {
                target: target.id,
                time: now,
                attempt: 0,
                status: 'dropped',
                error: `more than ${full} notifications pending`,
              });
              continue;
            }
            pending++;
            p.pending++;
            rows.push({
              id: newId(now),
              projectId,
              targetId: target.id,
              logId: entry.log.id,
              body,
              attempt: 1,
              dueTime: now,
              createTime: now,
              // Cluster mode: made here, run here, claimed from the start.
              ...(claims ? { claimedBy: claims.node, claimUntil: now + claims.claimMs } : {}),
            });
          }
          await persist('stored', () => jobs.insertJobs(rows));
          if (stopped) return;
          for (const row of rows) resume(row);
          pump();
        }),
      ).catch((err: unknown) => logger.error({ err, projectId }, 'notification targets not read'));
    },

    /**
     * Takes up the deliveries left in `notify_jobs` (due ones are queued, the others wait). One node: all of
     * them, at once. Cluster mode: it claims those of the last run of this node and those nobody holds, then
     * renews its claims and takes over lapsed ones every third of a claim time (docs/cluster.md §4).
     */
    async recover() {
      if (!claims) {
        takeUp(await track(jobs.allJobs()));
        return;
      }
      await track(takeOver(claims, true));
      if (claimTimer || stopped) return;
      claimTimer = setInterval(
        () => {
          claiming ??= renew(claims)
            .catch((err: unknown) => logger.warn({ err }, 'notification job claims not renewed; retrying'))
            .finally(() => {
              claiming = undefined;
            });
        },
        Math.max(100, Math.floor(claims.claimMs / 3)),
      );
      claimTimer.unref();
    },

    /** A target was created or changed. */
    targetsChanged(projectId: string) {
      targets.invalidate(projectId);
    },

    /**
     * A target was deleted or disabled: its queued and waiting deliveries are dropped, in memory, and
     * (`stored`, on the node where the change was made) in `notify_jobs`.
     */
    async targetRemoved(projectId: string, targetId: string, { stored = true }: { stored?: boolean } = {}) {
      targets.invalidate(projectId);
      breakers.delete(targetId);
      drop((j) => j.projectId === projectId && j.targetId === targetId);
      if (stored) await track(jobs.deleteTargetJobs(projectId, targetId));
      settle();
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

    /** Deliveries pending for one project. */
    projectPending(projectId: string) {
      return projects.get(projectId)?.pending ?? 0;
    },

    /**
     * Stops taking work; waits for running deliveries (bounded by their timeout). Queued and waiting
     * ones stay in `notify_jobs` for the next start.
     */
    async stop() {
      stopped = true;
      if (claimTimer) clearInterval(claimTimer);
      claimTimer = undefined;
      await claiming;
      for (const w of waiting.values()) w.cancel();
      waiting.clear();
      for (const p of projects.values()) {
        p.queue = [];
        p.ringed = false;
      }
      ring.length = 0;
      await new Promise<void>((resolve) => {
        if (running === 0 && resolving === 0) resolve();
        else idleWaiters.push(resolve);
      });
      projects.clear();
      pending = 0;
      // Cluster mode: what this node held goes back at once: another node (or the next start) takes it up.
      const left = [...held.keys()];
      held.clear();
      if (claims) await persist('released', () => jobs.releaseClaims(claims.node, left));
    },
  };
}
export type Notifier = ReturnType<typeof createNotifier>;
