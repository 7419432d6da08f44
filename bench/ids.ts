/**
 * bench/ids — generation speed of our ids (src/lib/ids.ts `newId`: 24 hex characters, 6 bytes of
 * milliseconds + 6 random bytes) against the `ulid` library (26 Crockford base32 characters, 48-bit
 * time + 80 random bits; a different format, shown for scale). Prints ids/s of each and the ratio.
 *
 *   npx tsx bench/ids.ts [--count 200000] [--rounds 5]
 */
import { monotonicFactory, ulid } from 'ulid';
import { newId } from '../src/lib/ids.ts';
import { benchArgs, intArg } from './lib/args.ts';

const args = benchArgs('ids', {
  count: { type: 'string', default: '200000' },
  rounds: { type: 'string', default: '5' },
});
const COUNT = intArg('ids', 'count', args.count, 1000, 10_000_000);
const ROUNDS = intArg('ids', 'rounds', args.rounds, 1, 50);

const monotonic = monotonicFactory();
const generators: Array<[string, () => string]> = [
  ['newId (ours)', () => newId()],
  ['ulid()', () => ulid()],
  ['ulid monotonicFactory()', () => monotonic()],
];

/** Best of ROUNDS timed loops of COUNT calls (after one untimed loop), in ids per second. */
function idsPerSecond(generate: () => string): number {
  let sink = 0;
  for (let i = 0; i < COUNT; i++) sink += generate().length;
  let best = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    const started = performance.now();
    for (let i = 0; i < COUNT; i++) sink += generate().length;
    best = Math.min(best, performance.now() - started);
  }
  if (sink === 0) throw new Error('unreachable');
  return COUNT / (best / 1000);
}

console.log(`bench/ids: count=${COUNT} rounds=${ROUNDS} node=${process.version}`);
const rates = generators.map(([name, generate]) => [name, idsPerSecond(generate), generate()] as const);
const ours = rates[0]![1];
for (const [name, rate, sample] of rates)
  console.log(
    `${name.padEnd(24)} ${Math.round(rate).toLocaleString('en-US').padStart(12)} ids/s  ` +
      `ours/this ${(ours / rate).toFixed(2)}  e.g. ${sample} (${sample.length} chars)`,
  );
