/**
 * bench/ttl-cache — the hot-path reads of src/lib/ttl-cache.ts (`peek` per MQTT message in the alarm
 * engine and the live events; `get` on a hit) against `lru-cache` with its `ttl` option used the way a
 * replacement would have to (one cache, the namespace joined into the key). Prints reads/s of each and
 * the ratio.
 *
 *   npx tsx bench/ttl-cache.ts [--count 1000000] [--rounds 5] [--keys 1000]
 */
import { LRUCache } from 'lru-cache';
import { TtlCache } from '../src/lib/ttl-cache.ts';
import { benchArgs, intArg } from './lib/args.ts';

const args = benchArgs('ttl-cache', {
  count: { type: 'string', default: '1000000' },
  rounds: { type: 'string', default: '5' },
  keys: { type: 'string', default: '1000' },
});
const COUNT = intArg('ttl-cache', 'count', args.count, 1000, 100_000_000);
const ROUNDS = intArg('ttl-cache', 'rounds', args.rounds, 1, 50);
const KEYS = intArg('ttl-cache', 'keys', args.keys, 1, 1_000_000);

const namespaces = Array.from({ length: 10 }, (_, i) => `project-${i}`);
const keys = Array.from({ length: KEYS }, (_, i) => `device-${String(i).padStart(8, '0')}`);

const ours = new TtlCache<number>(60_000);
const lru = new LRUCache<string, { value: Promise<number>; settled?: { value: number } }>({
  max: namespaces.length * KEYS,
  ttl: 60_000,
});
for (const ns of namespaces)
  for (const [i, key] of keys.entries()) {
    await ours.get(ns, key, async () => i);
    const value = Promise.resolve(i);
    lru.set(`${ns}\u0000${key}`, { value, settled: { value: i } });
  }

/** Best of ROUNDS timed loops of COUNT reads (after one untimed loop), in reads per second. */
function readsPerSecond(read: (ns: string, key: string) => number | undefined): number {
  let sink = 0;
  const loop = () => {
    for (let i = 0; i < COUNT; i++) sink += read(namespaces[i % 10]!, keys[i % KEYS]!) ?? 0;
  };
  loop();
  let best = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    const started = performance.now();
    loop();
    best = Math.min(best, performance.now() - started);
  }
  if (sink < 0) throw new Error('unreachable');
  return COUNT / (best / 1000);
}

console.log(`bench/ttl-cache: count=${COUNT} rounds=${ROUNDS} keys=${KEYS}×10 namespaces node=${process.version}`);
const rows: Array<[string, number, number]> = [];
const pair = (what: string, a: number, b: number) => rows.push([what, a, b]);
pair(
  'peek (hit)',
  readsPerSecond((ns, key) => ours.peek(ns, key)?.value),
  readsPerSecond((ns, key) => lru.get(`${ns}\u0000${key}`)?.settled?.value),
);
pair(
  'get (hit, promise)',
  readsPerSecond((ns, key) => (ours.get(ns, key, () => Promise.resolve(0)) === undefined ? 0 : 1)),
  readsPerSecond((ns, key) => (lru.get(`${ns}\u0000${key}`)?.value ? 1 : 0)),
);
const fmt = (n: number) => Math.round(n).toLocaleString('en-US').padStart(12);
console.log(`${''.padEnd(20)} ${'TtlCache/s'.padStart(12)} ${'lru-cache/s'.padStart(12)}  ours/lru`);
for (const [what, a, b] of rows) console.log(`${what.padEnd(20)} ${fmt(a)} ${fmt(b)}  ${(a / b).toFixed(2)}`);
