import { describe, expect, it } from 'vitest';
import { createUnavailableRetry } from '../../mqtt-broker/mqtt/retry-unavailable.ts';
import { BadRequest } from '../../src/errors.ts';

const unavailable = () => Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });

/** A retry whose clock is real time and whose warnings are kept (their retryInMs in order). */
function setup(retryUnavailableMs: number) {
  const waits: number[] = [];
  const retry = createUnavailableRetry({
    retryUnavailableMs,
    clock: Date.now,
    log: { warn: ((o: { retryInMs: number }) => waits.push(o.retryInMs)) as never },
  });
  return { retry, waits };
}

describe('trying an MQTT device message again while the database is unavailable (mqtt/retry-unavailable.ts)', () => {
  it('tries again with growing waits until the message goes through, and returns its answer', async () => {
    const { retry, waits } = setup(5_000);
    let calls = 0;
    const answer = await retry(
      'd1',
      () => false,
      async () => {
        calls += 1;
        if (calls < 3) throw unavailable();
        return 'stored';
      },
      unavailable(),
    );
    expect(answer).toBe('stored');
    expect(calls).toBe(3);
    expect(waits).toEqual([50, 100, 200]);
  });

  it('throws at once what is not the database being away, or once the connection closed', async () => {
    const { retry, waits } = setup(5_000);
    const refused = new BadRequest('bad payload');
    await expect(
      retry(
        'd1',
        () => false,
        async () => 'never',
        refused,
      ),
    ).rejects.toBe(refused);
    const first = unavailable();
    await expect(
      retry(
        'd1',
        () => true,
        async () => 'never',
        first,
      ),
    ).rejects.toBe(first);
    expect(waits).toEqual([]);
  });

  it('gives up with the last error when the next wait would pass the deadline', async () => {
    const { retry, waits } = setup(400);
    let last: Error | undefined;
    const attempt = async () => {
      throw (last = unavailable());
    };
    await expect(retry('d1', () => false, attempt, unavailable())).rejects.toSatisfy((e) => e === last);
    // 50 + 100 + 200 = 350 ms waited; 400 more would pass 400 ms.
    expect(waits).toEqual([50, 100, 200]);
  });
});
