import pRetry from 'p-retry';
import type { Logger } from 'pino';

/**
 * Runs `task` until it succeeds (docs/cluster.md §3, §5): the recovery from a lost node (taking its devices offline,
 * rebuilding its current values, arming its alarm timers) must not be given up because the database was away at
 * that moment. A failed attempt is tried again with back-off (0.5 s doubling to 30 s, jittered) while `still()`
 * holds (this node still has the job, the lost node is still lost) and `signal` is not aborted (stopping). Never
 * rejects: the end of the retries is logged.
 */
export async function retryWhile(opts: {
  what: string;
  task: () => Promise<unknown>;
  still: () => boolean;
  signal: AbortSignal;
  logger: Pick<Logger, 'warn' | 'error'>;
}): Promise<boolean> {
  const { what, task, still, signal, logger } = opts;
  // (p-retry makes its first attempt even when the signal is aborted already.)
  if (signal.aborted) return false;
  try {
    await pRetry(task, {
      forever: true,
      minTimeout: 500,
      maxTimeout: 30_000,
      randomize: true,
      signal,
      shouldRetry: () => still() && !signal.aborted,
      onFailedAttempt: (err) => logger.warn({ err, what, attempt: err.attemptNumber }, `${what} failed`),
    });
    return true;
  } catch (err) {
    if (!signal.aborted) logger.error({ err, what }, `${what} failed; given up (no longer this node's job)`);
    return false;
  }
}
