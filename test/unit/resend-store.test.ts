import { describe, expect, it } from 'vitest';
import { ResendStore } from '../../simulator/resend-store.ts';

/** The simulator's outgoing store marks what mqtt.js sends again DUP (device-protocol.md §3.3). */
describe('ResendStore', () => {
  const publish = (messageId: number) =>
    ({
      cmd: 'publish',
      topic: 'attributes',
      payload: Buffer.from('{}'),
      qos: 1,
      messageId,
      dup: false,
      retain: false,
    }) as const;

  async function streamed(store: ResendStore) {
    const out: Array<{ messageId?: number; dup?: boolean }> = [];
    for await (const p of store.createStream()) out.push({ messageId: p.messageId, dup: p.dup });
    return out;
  }

  it('leaves a first send alone and marks DUP what is read back to be sent again', async () => {
    const store = new ResendStore();
    const a = { ...publish(1) };
    const b = { ...publish(2) };
    store.put(a, () => {});
    store.put(b, () => {});
    expect(a.dup).toBe(false);
    store.del({ messageId: 2 }, () => {});
    expect(await streamed(store)).toEqual([{ messageId: 1, dup: true }]);
    // What it holds now was sent again once: still DUP for the next connection.
    expect(await streamed(store)).toEqual([{ messageId: 1, dup: true }]);
    expect(b.dup).toBe(false);
  });
});
