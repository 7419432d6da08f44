import type { Logger } from 'pino';
import type { CommandsRepository } from '../../db/repositories/commands.repository.ts';

/** Commands queued without a time to live exist only while their send() runs; older ones were cut short. */
const INTERRUPTED_AFTER_MS = 60_000;

export interface CommandSweeperDeps {
  repo: Pick<CommandsRepository, 'timeoutDue' | 'expireDue' | 'failInterrupted'>;
  clock: () => number;
  logger: Pick<Logger, 'error'>;
  /** How often timed-out and expired commands are swept. */
  sweepMs: number;
  /** Told the id of every command the sweep moved to a final state. */
  onFinal(id: string): void;
  /** Cluster mode: whether this node sweeps now (it holds the lease; docs/cluster.md §4). Default: always. */
  runs?: () => boolean;
}

/**
 * Moves sent commands past their reply timeout to `timeout`, queued ones past their TTL to
 * `expired`, and fails commands whose send() was cut short (device-protocol.md §10). One sweep at
 * a time: a sweep asked for while one runs shares it.
 */
export function createCommandSweeper({ repo, clock, logger, sweepMs, onFinal, runs = () => true }: CommandSweeperDeps) {
  let timer: NodeJS.Timeout | undefined;
  let sweeping: Promise<void> | undefined;

  async function sweep(now = clock()): Promise<void> {
    if (sweeping) return sweeping;
    sweeping = (async () => {
      const timedOut = await repo.timeoutDue(now);
      const expired = await repo.expireDue(now);
      await repo.failInterrupted(now - INTERRUPTED_AFTER_MS, now);
      for (const id of [...timedOut, ...expired]) onFinal(id);
    })().finally(() => {
      sweeping = undefined;
    });
    return sweeping;
  }

  return {
    sweep,

    start() {
      timer ??= setInterval(() => {
        if (!runs()) return;
        sweep().catch((err: unknown) => logger.error({ err }, 'command sweep failed; will retry'));
      }, sweepMs);
      timer.unref();
    },

    /** Stops the timer; a sweep already running goes on (see `settled`). */
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },

    /** Resolves once the running sweep, if any, has ended (whatever its outcome). */
    async settled() {
      await sweeping?.catch(() => {});
    },
  };
}
export type CommandSweeper = ReturnType<typeof createCommandSweeper>;
