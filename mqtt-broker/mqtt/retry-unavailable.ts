import type { Logger } from 'pino';
import { isTransientDbError } from '../core/port.ts';

export interface RetryUnavailableOptions {
  /** How long after the first failure a message is still tried again. */
  retryUnavailableMs: number;
  clock: () => number;
  log: Pick<Logger, 'warn'>;
}

/**
 * Tries an MQTT device message again while the database is unavailable (the ingest pipeline rides out
 * outages by itself; the look-ups before it, and the other stores, are tried here) for as long as the
 * connection lasts, up to `retryUnavailableMs`, waiting 50 ms and then twice as long each time (at most
 * 2 s). What failed stored nothing (reports are all or nothing and their batches are never written twice;
 * an event or a data message whose commit's answer was lost with its connection may be), so trying the
 * message again is safe.
 *
 * The raw TCP listener does not try again: its messages are not acknowledged, a failed one is counted
 * and logged (device-protocol.md §6).
 */
export function createUnavailableRetry({ retryUnavailableMs, clock, log }: RetryUnavailableOptions) {
  /**
   * `attempt` failed with `first`: tries it again while the failure is a transient database error, the
   * connection is open (`closed()` false) and the deadline allows the next wait; otherwise throws the
   * last error.
   */
  return async function retryUnavailable<T>(
    deviceId: string,
    closed: () => boolean,
    attempt: () => Promise<T>,
    first: unknown,
  ): Promise<T> {
    const deadline = clock() + retryUnavailableMs;
    for (let err = first, delay = 50; ; delay = Math.min(delay * 2, 2_000)) {
      if (!isTransientDbError(err) || closed() || clock() + delay > deadline) throw err;
      log.warn({ deviceId, err, retryInMs: delay }, 'device message not stored: database unavailable, retrying');
      await new Promise((r) => setTimeout(r, delay));
      try {
        return await attempt();
      } catch (e) {
        err = e;
      }
    }
  };
}
