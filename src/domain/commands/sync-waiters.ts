/** Synchronous callers waiting for a command to reach a final state, by command id (in this process). */
export function createSyncWaiters() {
  const waiters = new Map<string, Set<() => void>>();

  /** Wakes every caller waiting for the command. */
  function wake(id: string) {
    const set = waiters.get(id);
    if (!set) return;
    waiters.delete(id);
    for (const w of set) w();
  }

  /** Waits until the command is woken or `ms` elapse; `cancel` ends the wait early. */
  function waitFor(id: string, ms: number) {
    let finish!: (how: 'woken' | 'elapsed') => void;
    const done = new Promise<'woken' | 'elapsed'>((resolve) => {
      const set = waiters.get(id) ?? new Set<() => void>();
      const onWake = () => finish('woken');
      const t = setTimeout(() => finish('elapsed'), ms);
      finish = (how) => {
        clearTimeout(t);
        set.delete(onWake);
        if (!set.size && waiters.get(id) === set) waiters.delete(id);
        resolve(how);
      };
      set.add(onWake);
      waiters.set(id, set);
    });
    return { done, cancel: () => finish('woken') };
  }

  /** Wakes every waiting caller (shutdown). */
  function wakeAll() {
    for (const id of [...waiters.keys()]) wake(id);
  }

  return { wake, waitFor, wakeAll };
}
export type SyncWaiters = ReturnType<typeof createSyncWaiters>;
