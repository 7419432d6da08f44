import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;

/** The usage text of a bench: its command and every flag with its default. */
export function benchUsage(bench: string, options: Options): string {
  const flags = Object.entries(options).map(([name, o]) => {
    const value = o.type === 'boolean' ? '' : ' <value>';
    const dflt = o.default === undefined ? '' : `  (default ${String(o.default)})`;
    return `  --${name}${value}${dflt}`;
  });
  return [`usage: npm run bench:${bench} -- [flags]   (bench/README.md describes each)`, ...flags, '  --help'].join(
    '\n',
  );
}

/**
 * Flags of a bench (node:util parseArgs, strict): `--help` prints the usage and exits 0; an unknown flag or a
 * missing value prints one line and the usage and exits 2, instead of a stack trace.
 */
export function benchArgs<O extends Options>(bench: string, options: O, argv = process.argv.slice(2)) {
  let values: Record<string, unknown>;
  try {
    values = parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', default: false } },
      strict: true,
    }).values;
  } catch (err) {
    console.error(`bench/${bench}: ${(err as Error).message}\n${benchUsage(bench, options)}`);
    return process.exit(2);
  }
  const { help, ...flags } = values;
  if (help) {
    console.log(benchUsage(bench, options));
    return process.exit(0);
  }
  return flags as ReturnType<typeof parseArgs<{ options: O }>>['values'];
}

/** An integer flag within bounds, or one line naming it and exit 2. */
export function intArg(bench: string, name: string, raw: string | undefined, min: number, max: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    console.error(`bench/${bench}: --${name} must be an integer in ${min}..${max} (got ${raw})`);
    process.exit(2);
  }
  return n;
}
