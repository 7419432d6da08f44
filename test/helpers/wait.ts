import { vi } from 'vitest';

/** The first value `probe` gives that is not undefined, asked every `interval` ms for at most `timeout` ms. */
export function waitForValue<T>(
  probe: () => Promise<T | undefined>,
  { timeout, interval = 50 }: { timeout: number; interval?: number },
): Promise<T> {
  return vi.waitFor(
    async () => {
      const value = await probe();
      if (value === undefined) throw new Error('timed out waiting');
      return value;
    },
    { timeout, interval },
  );
}

/**
 * Waits until `check` holds, asked every `interval` ms for at most `timeout` ms; `what` names it in the failure.
 * Answers the milliseconds it took.
 */
export async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  { timeout = 5_000, interval = 10 }: { timeout?: number; interval?: number } = {},
): Promise<number> {
  const start = Date.now();
  await vi.waitFor(
    async () => {
      if (!(await check())) throw new Error(`timed out waiting for ${what}`);
    },
    { timeout, interval },
  );
  return Date.now() - start;
}
