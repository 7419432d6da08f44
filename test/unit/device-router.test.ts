import mqemitter, { type Message } from 'mqemitter';
import { describe, expect, it } from 'vitest';
import { DeviceTopicRouter } from '../../mqtt-broker/mqtt/device-router.ts';

/** A router over a tree made as Aedes makes its own. */
const newRouter = () => new DeviceTopicRouter(mqemitter({ matchEmptyLevels: true }));
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
const emit = (router: DeviceTopicRouter, topic: string) =>
  new Promise<Error | undefined>((resolve) => router.emit({ topic, payload: Buffer.alloc(0) }, resolve));

/** A listener that records the topics it is given and releases each message at once. */
function recorder() {
  const seen: string[] = [];
  const notify = (message: Message, done: () => void) => {
    seen.push(message.topic);
    done();
  };
  return { seen, notify };
}

describe('DeviceTopicRouter (mqtt-broker/mqtt/device-router.ts)', () => {
  it('delivers a device topic to that device’s matching filters only', async () => {
    const router = newRouter();
    const a = recorder();
    const aCommands = recorder();
    const b = recorder();
    router.on('$d/devA/attributes/response', a.notify);
    router.on('$d/devA/command/send/+', aCommands.notify);
    router.on('$d/devB/attributes/response', b.notify);
    await emit(router, '$d/devA/attributes/response');
    await emit(router, '$d/devA/command/send/42');
    await emit(router, '$d/devA/command/send/4/2');
    await emit(router, '$d/devB/command/send/42');
    expect(a.seen).toEqual(['$d/devA/attributes/response']);
    expect(aCommands.seen).toEqual(['$d/devA/command/send/42']);
    expect(b.seen).toEqual([]);
    expect(router.devices).toBe(2);
  });

  it('matches # as the rest of the topic, its parent level included, and + an empty level', async () => {
    const router = newRouter();
    const all = recorder();
    const empty = recorder();
    router.on('$d/d1/attributes/#', all.notify);
    router.on('$d/d1/a/+/c', empty.notify);
    await emit(router, '$d/d1/attributes');
    await emit(router, '$d/d1/attributes/push/x');
    await emit(router, '$d/d1/a//c');
    await emit(router, '$d/d1/attributesX');
    expect(all.seen).toEqual(['$d/d1/attributes', '$d/d1/attributes/push/x']);
    expect(empty.seen).toEqual(['$d/d1/a//c']);
  });

  it('leaves every other topic to the tree, wildcards over devices included', async () => {
    const router = newRouter();
    const sys = recorder();
    const anyDevice = recorder();
    const own = recorder();
    router.on('$SYS/+/heartbeat', sys.notify);
    router.on('$d/+/attributes/response', anyDevice.notify);
    router.on('$d/devD/attributes/response', own.notify);
    await emit(router, '$SYS/broker1/heartbeat');
    await emit(router, '$d/devC/attributes/response');
    // A device with subscriptions of its own: the tree's listener over all devices hears it too.
    await emit(router, '$d/devD/attributes/response');
    expect(sys.seen).toEqual(['$SYS/broker1/heartbeat']);
    expect(anyDevice.seen).toEqual(['$d/devC/attributes/response', '$d/devD/attributes/response']);
    expect(own.seen).toEqual(['$d/devD/attributes/response']);
    expect(router.devices).toBe(1);
    // Gone from the tree: a device's messages no longer go there.
    await new Promise<void>((resolve) => router.removeListener('$d/+/attributes/response', anyDevice.notify, resolve));
    await emit(router, '$d/devD/attributes/response');
    expect(anyDevice.seen).toHaveLength(2);
    expect(own.seen).toHaveLength(2);
  });

  it('calls overlapping filters in the order of mqemitter’s tree (Aedes delivers through the first)', async () => {
    // Added in an order unlike the tree's: `#` first at each level, then the word, then `+`.
    const filters = ['+/b/c', 'a/+/c', 'a/b/+', 'a/b/c', 'a/#', '#', 'a/b/#', '+/+/+', 'a/b/c', '+/#'];
    const topics = ['a/b/c', 'a/b', 'x/b/c', 'a'];
    const tree = mqemitter({ matchEmptyLevels: true });
    const router = newRouter();
    const orderOf = async (
      on: (topic: string, fn: (m: Message, done: () => void) => void) => void,
      send: (topic: string) => Promise<unknown>,
      topic: string,
    ) => {
      const calls: number[] = [];
      const fns = filters.map((_, k) => (_m: Message, done: () => void) => {
        calls.push(k);
        done();
      });
      filters.forEach((f, k) => on(`$d/d9/${f}`, fns[k]!));
      await send(`$d/d9/${topic}`);
      filters.forEach((f, k) => router.removeListener(`$d/d9/${f}`, fns[k]!));
      filters.forEach((f, k) => tree.removeListener(`$d/d9/${f}`, fns[k]!));
      await turn();
      return calls;
    };
    for (const topic of topics) {
      const expected = await orderOf(
        (t, fn) => tree.on(t, fn),
        (t) => new Promise((resolve) => tree.emit({ topic: t }, resolve)),
        topic,
      );
      const got = await orderOf(
        (t, fn) => router.on(t, fn),
        (t) => emit(router, t),
        topic,
      );
      expect(got, topic).toEqual(expected);
      expect(got.length, topic).toBeGreaterThan(0);
    }
  });

  it('calls back once every matching listener has released the message', async () => {
    const router = newRouter();
    const releases: Array<() => void> = [];
    const slow = (_m: Message, done: () => void) => void releases.push(done);
    router.on('$d/d1/x', slow);
    router.on('$d/d1/+', slow);
    let called = false;
    router.emit({ topic: '$d/d1/x' }, () => (called = true));
    expect(releases).toHaveLength(2);
    releases[0]!();
    await turn();
    expect(called).toBe(false);
    releases[1]!();
    expect(called).toBe(true);
    // No listener matches: called back at once.
    expect(await emit(router, '$d/d1/y/z')).toBeUndefined();
  });

  it('removes the listener it is given, not another one on the same filter', async () => {
    const router = newRouter();
    const first = recorder();
    const second = recorder();
    router.on('$d/d1/x', first.notify);
    router.on('$d/d1/x', second.notify);
    await new Promise<void>((resolve) => router.removeListener('$d/d1/x', first.notify, resolve));
    await emit(router, '$d/d1/x');
    expect(first.seen).toEqual([]);
    expect(second.seen).toEqual(['$d/d1/x']);
    expect(router.subscriptionsOf('d1')).toBe(1);
  });

  it('removes a listener on the next turn, the last one added first, and forgets a device without any', async () => {
    const router = newRouter();
    const r = recorder();
    router.on('$d/d1/x', r.notify);
    router.on('$d/d1/x', r.notify);
    let removed = false;
    router.removeListener('$d/d1/x', r.notify, () => (removed = true));
    // As mqemitter: still there until the next turn (Aedes removes, then adds again, to resubscribe).
    await emit(router, '$d/d1/x');
    expect(r.seen).toHaveLength(2);
    await turn();
    expect(removed).toBe(true);
    await emit(router, '$d/d1/x');
    expect(r.seen).toHaveLength(3);
    await new Promise<void>((resolve) => router.removeListener('$d/d1/x', r.notify, resolve));
    expect(router.devices).toBe(0);
    await emit(router, '$d/d1/x');
    expect(r.seen).toHaveLength(3);
  });

  it("keeps a device's only listener when asked to remove another, and grows and shrinks its list", async () => {
    const router = newRouter();
    const a = recorder();
    const b = recorder();
    router.on('$d/d1/x', a.notify);
    await new Promise<void>((resolve) => router.removeListener('$d/d1/y', a.notify, resolve));
    await new Promise<void>((resolve) => router.removeListener('$d/d1/x', b.notify, resolve));
    expect(await emit(router, '$d/d1/y')).toBeUndefined();
    await emit(router, '$d/d1/x');
    expect(a.seen).toEqual(['$d/d1/x']);
    router.on('$d/d1/+', b.notify);
    expect(router.subscriptionsOf('d1')).toBe(2);
    await new Promise<void>((resolve) => router.removeListener('$d/d1/x', a.notify, resolve));
    expect(router.subscriptionsOf('d1')).toBe(1);
    router.on('$d/d1/z', a.notify);
    await emit(router, '$d/d1/x');
    await emit(router, '$d/d1/z');
    expect(a.seen).toEqual(['$d/d1/x', '$d/d1/z']);
    expect(b.seen).toEqual(['$d/d1/x', '$d/d1/z']);
  });

  it('refuses to emit once closed', async () => {
    const router = newRouter();
    await new Promise<void>((resolve) => router.close(resolve));
    expect((await emit(router, '$d/d1/x'))?.message).toMatch(/closed/);
    expect((await emit(router, 'other/topic'))?.message).toMatch(/closed/);
  });
});
