import type { CommandRow } from '../../db/repositories/commands.repository.ts';

/** How a wait ended: woken (with the command's row when the waker had it at hand) or elapsed. */
export type WaitEnd = { how: 'woken'; row?: CommandRow | undefined } | { how: 'elapsed' };

/** Synchronous callers waiting for a command to reach a final state, by command id (in this process). */
export function createSyncWaiters() {
  const waiters = new Map<string, Set<(row?: CommandRow) => void>>();

  /**
   * Wakes every caller waiting for the command. `row`: the command as just stored (a reply on this node),
   * so the caller need not read it again; without it (the sweeper, another node's reply) callers read it.
   */
  function wake(id: string, row?: CommandRow) {
    const set = waiters.get(id);
    if (!set) return;
    waiters.delete(id);
    for (const w of set) w(row);
  }

  /**
   * Registers a wait for the command, woken from now on; `arm(ms)` starts its clock and answers how it
   * ended (at once when it was woken before); `cancel` ends it early.
   */
  function register(id: string) {
    let timer: NodeJS.Timeout | undefined;
    let ended = false;
    let finish!: (end: WaitEnd) => void;
    const done = new Promise<WaitEnd>((resolve) => {
      const set = waiters.get(id) ?? new Set<(row?: CommandRow) => void>();
      const onWake = (row?: CommandRow) => finish({ how: 'woken', row });
      finish = (end) => {
        ended = true;
        clearTimeout(timer);
        set.delete(onWake);
        if (!set.size && waiters.get(id) === set) waiters.delete(id);
        resolve(end);
      };
      set.add(onWake);
      waiters.set(id, set);
    });
    return {
      arm(ms: number): Promise<WaitEnd> {
        if (!ended && timer === undefined) timer = setTimeout(() => finish({ how: 'elapsed' }), ms);
        return done;
      },
      cancel: () => finish({ how: 'woken' }),
    };
  }

  /** Wakes every waiting caller (shutdown). */
  function wakeAll() {
    for (const id of [...waiters.keys()]) wake(id);
  }

  return { wake, register, wakeAll };
}
export type SyncWaiters = ReturnType<typeof createSyncWaiters>;
