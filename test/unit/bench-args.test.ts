import { afterEach, describe, expect, it, vi } from 'vitest';
import { benchArgs, benchUsage, intArg } from '../../bench/lib/args.ts';

/** The benches' flags: `--help` and bad flags answer in a line or two and an exit code, never a stack trace. */
const OPTIONS = { devices: { type: 'string', default: '1000' }, vacuum: { type: 'boolean', default: false } } as const;

function exits() {
  const out: string[] = [];
  vi.spyOn(console, 'log').mockImplementation((s: string) => void out.push(s));
  vi.spyOn(console, 'error').mockImplementation((s: string) => void out.push(s));
  vi.spyOn(process, 'exit').mockImplementation(((code: number) => {
    throw new Error(`exit ${code}`);
  }) as never);
  return out;
}
afterEach(() => vi.restoreAllMocks());

describe('bench flags', () => {
  it('--help prints every flag with its default and exits 0', () => {
    const out = exits();
    expect(() => benchArgs('ingest', OPTIONS, ['--help'])).toThrow('exit 0');
    expect(out.join('\n')).toBe(benchUsage('ingest', OPTIONS));
    expect(out[0]).toMatch(/^usage: npm run bench:ingest -- \[flags\]/);
    expect(out[0]).toContain('--devices <value>  (default 1000)');
    expect(out[0]).toContain('--vacuum  (default false)');
  });

  it('an unknown flag names it and exits 2', () => {
    const out = exits();
    expect(() => benchArgs('ingest', OPTIONS, ['--bogus'])).toThrow('exit 2');
    expect(out[0]).toMatch(/^bench\/ingest: Unknown option '--bogus'\nusage:/);
  });

  it('passes flags through, with defaults', () => {
    expect(benchArgs('ingest', OPTIONS, ['--devices', '7'])).toEqual({ devices: '7', vacuum: false });
  });

  it('an integer out of bounds names the flag and exits 2', () => {
    const out = exits();
    expect(intArg('tcp', 'rate', '5', 1, 10)).toBe(5);
    expect(() => intArg('tcp', 'rate', '11', 1, 10)).toThrow('exit 2');
    expect(() => intArg('tcp', 'rate', 'x', 1, 10)).toThrow('exit 2');
    expect(out).toEqual([
      'bench/tcp: --rate must be an integer in 1..10 (got 11)',
      'bench/tcp: --rate must be an integer in 1..10 (got x)',
    ]);
  });
});
