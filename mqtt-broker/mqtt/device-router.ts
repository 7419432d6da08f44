import type { MQEmitter, Message } from 'mqemitter';
import { Interner } from '../../src/lib/intern.ts';
import { DEVICE_PREFIX, deviceIdEnd, filterMatches, splitDeviceTopic } from '../protocol/topics.ts';

type Listener = (message: Message, done: () => void) => void;

/**
 * The one copy of a relative filter that connections keep (the broker's state of each connection, this router's
 * entries): most devices subscribe to the same few filters (src/lib/intern.ts). Bounded by count and length.
 */
export const sharedFilters = new Interner(256, 128);

/** One device's subscription: its filter relative to `$d/<deviceId>/`, and Aedes' delivery function. */
interface DeviceListener {
  filter: string;
  notify: Listener;
}

/** Where a filter's level sorts among the matches of one message, as in mqemitter's tree: `#`, a word, `+`. */
const levelRank = (level: string | undefined) => (level === '#' ? 0 : level === '+' ? 2 : 1);

/**
 * The order mqemitter's tree calls the filters matching one topic in: level by level, `#` first, then the word
 * itself, then `+`; filters alike in the order they were added (the sort is stable). It matters: when a device's
 * filters overlap, Aedes delivers one copy, through the first listener (so at that subscription's QoS).
 */
function treeOrder(a: DeviceListener, b: DeviceListener): number {
  if (a.filter === b.filter) return 0;
  const x = a.filter.split('/');
  const y = b.filter.split('/');
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if (x[i] !== y[i]) return levelRank(x[i]) - levelRank(y[i]);
  }
  return 0;
}

/**
 * Aedes' message router (its `mq`), with the subscriptions of each device (`$d/<deviceId>/…`, deviceTopic in
 * protocol/topics.ts) held in a map by device instead of mqemitter's topic tree; every other topic goes to
 * `inner`. In the tree, a subscription under a device's own prefix adds a branch per topic level: ~950 bytes of
 * heap each, against ~140 for a topic all devices share (bench/README "Memory per connection without the young
 * generation"). Here it is one small object in the device's list, and a message to a device is matched against
 * that device's few filters only. Written here because the shape is ours: mqemitter takes no matcher of its own.
 *
 * The interface and timing follow mqemitter, which Aedes expects: `on` adds at once and calls back on the next
 * turn; `removeListener` removes on the next turn (Aedes resubscribes with remove-then-add); `emit` calls every
 * matching listener, in the tree's order (treeOrder), and calls back once all have called back.
 */
export class DeviceTopicRouter implements MQEmitter {
  readonly #inner: MQEmitter;
  /**
   * Each device's subscriptions: the one listener itself while it has one (most devices: no array, ~56 bytes less
   * a connection), an array once it has more.
   */
  readonly #devices = new Map<string, DeviceListener | DeviceListener[]>();
  /**
   * Listeners of the tree that may match a device's topics (`$d/+/…`, `$d/#`): none that our server makes, but
   * while there are any, a device's messages go to the tree as well.
   */
  #treeDeviceListeners = 0;
  #closed = false;

  constructor(inner: MQEmitter) {
    this.#inner = inner;
  }

  get current(): number {
    return this.#inner.current;
  }

  get concurrent(): number {
    return this.#inner.concurrent;
  }

  /** Devices with at least one subscription held here (for tests and diagnostics). */
  get devices(): number {
    return this.#devices.size;
  }

  /** The subscriptions held here for one device. */
  subscriptionsOf(deviceId: string): number {
    const found = this.#devices.get(deviceId);
    return found === undefined ? 0 : Array.isArray(found) ? found.length : 1;
  }

  on(topic: string, notify: Listener, done?: () => void): this {
    const at = splitDeviceTopic(topic);
    if (!at) {
      if (topic.startsWith(DEVICE_PREFIX)) this.#treeDeviceListeners++;
      this.#inner.on(topic, notify, done);
      return this;
    }
    const entry: DeviceListener = { filter: sharedFilters.intern(at.rest), notify };
    const found = this.#devices.get(at.id);
    if (found === undefined) this.#devices.set(at.id, entry);
    else if (Array.isArray(found)) found.push(entry);
    else this.#devices.set(at.id, [found, entry]);
    if (done) setImmediate(done);
    return this;
  }

  removeListener(topic: string, notify: Listener, done?: () => void): void {
    const at = splitDeviceTopic(topic);
    if (!at) {
      if (!topic.startsWith(DEVICE_PREFIX)) return this.#inner.removeListener(topic, notify, done);
      this.#inner.removeListener(topic, notify, () => {
        this.#treeDeviceListeners = Math.max(0, this.#treeDeviceListeners - 1);
        done?.();
      });
      return;
    }
    setImmediate(() => {
      const found = this.#devices.get(at.id);
      const same = (l: DeviceListener) => l.notify === notify && l.filter === at.rest;
      if (Array.isArray(found)) {
        // The last one added first, as mqemitter's tree does.
        for (let i = found.length - 1; i >= 0; i--) {
          if (same(found[i]!)) {
            found.splice(i, 1);
            break;
          }
        }
        if (found.length === 1) this.#devices.set(at.id, found[0]!);
      } else if (found !== undefined && same(found)) this.#devices.delete(at.id);
      done?.();
    });
  }

  emit(message: Message, callback?: (error?: Error) => void): void {
    const cb = callback ?? noop;
    if (this.#closed) return cb(new Error('mqemitter is closed'));
    const topic = message.topic;
    const end = deviceIdEnd(topic);
    const found = end < 0 ? undefined : this.#devices.get(topic.slice(DEVICE_PREFIX.length, end));
    // Nothing of the device's here: whatever else may match (nothing, for our own topics) is the tree's.
    if (found === undefined) return this.#inner.emit(message, callback);
    const matches: DeviceListener[] = [];
    if (!Array.isArray(found)) {
      if (filterMatches(found.filter, topic, end + 1)) matches.push(found);
    } else for (const l of found) if (filterMatches(l.filter, topic, end + 1)) matches.push(l);
    if (matches.length > 1) matches.sort(treeOrder);
    const alsoTree = this.#treeDeviceListeners > 0;
    let left = matches.length + (alsoTree ? 1 : 0);
    if (left === 0) return cb();
    const release = () => {
      if (--left === 0) cb();
    };
    for (const l of matches) l.notify.call(this.#inner, message, release);
    if (alsoTree) this.#inner.emit(message, release);
  }

  close(callback: () => void): void {
    this.#closed = true;
    this.#inner.close(callback);
  }
}

function noop() {}
