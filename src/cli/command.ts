import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Logger } from 'pino';
import type { z, ZodType } from 'zod';
import { loadConfig } from '../config.ts';
import { UsageError } from './errors.ts';
import type { Target } from './target.ts';
import type { TargetSettings } from './where.ts';

/** What a command may touch: tests and the entry pass their own. */
export interface CliIo {
  env: NodeJS.ProcessEnv;
  out(text: string): void;
  err(text: string): void;
}

export interface Command {
  /** The words that select it: `['project', 'create']`. */
  path: string[];
  summary: string;
  help: string;
  run(argv: string[], io: CliIo): Promise<void>;
}

export const PROGRAM = 'npm run cli --';

/** Flags every database-touching command accepts; each overrides its environment variable. */
export const targetOptions = {
  'data-dir': { type: 'string' },
  'database-url': { type: 'string' },
  init: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export const TARGET_HELP = `Where it goes (flag > environment > default):
  --data-dir <dir>        embedded database directory (DATA_DIR, default ./data)
  --database-url <url>    PostgreSQL/TimescaleDB URL (DATABASE_URL); when set, the embedded
                          database is not used; --database-url '' ignores the environment
  --init                  create a new, empty embedded database when the directory has none
                          (without it the command refuses: the server probably uses another DATA_DIR)
  -h, --help              show this help`;

/** node:util parseArgs with its errors turned into usage errors. */
export function parseFlags<T extends ParseArgsConfig>(config: T) {
  try {
    return parseArgs({ strict: true, ...config });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) throw new UsageError((err as Error).message);
    throw err;
  }
}

/**
 * Checks the parsed flags against a schema (often the HTTP body's, so both edges share one rule set);
 * problems are reported by flag name. `flags` names the flag of a field when it is not the field's
 * own name in kebab case.
 */
export function validate<T extends ZodType>(
  schema: T,
  input: unknown,
  flags: Record<string, string> = {},
): z.output<T> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.map((i) => {
    const [field, ...rest] = i.path.map(String);
    if (field === undefined) return i.message;
    const flag = `--${flags[field] ?? field.replaceAll('_', '-')}`;
    return `${rest.length > 0 ? `${flag} ${rest.join('.')}` : flag}: ${i.message}`;
  });
  throw new UsageError(lines.join('\n'));
}

/**
 * The database settings of config.ts, flags first, and the server's HTTP address (to tell a running
 * server that uses another directory); other server settings do not concern the CLI.
 */
export function targetConfig(
  values: { 'data-dir'?: string; 'database-url'?: string; init?: boolean },
  env: NodeJS.ProcessEnv,
): TargetSettings {
  const config = loadConfig({
    DATA_DIR: values['data-dir'] ?? env.DATA_DIR,
    DATABASE_URL: values['database-url'] ?? env.DATABASE_URL,
    HTTP_PORT: env.HTTP_PORT,
    HOST: env.HOST,
    // HTTP_PORT=off is valid only beside HTTPS (docs/tls.md §3): without these, every command of a
    // TLS-only server's environment would stop on that rule.
    TLS_CERT_FILE: env.TLS_CERT_FILE,
    TLS_KEY_FILE: env.TLS_KEY_FILE,
    HTTPS_PORT: env.HTTPS_PORT,
  });
  return {
    DATA_DIR: config.DATA_DIR,
    DATABASE_URL: config.DATABASE_URL,
    HTTP_PORT: config.HTTP_PORT,
    HOST: config.HOST,
    init: values.init === true,
    NATS_URL: env.NATS_URL?.trim() || undefined,
    NATS_TLS_CA_FILE: env.NATS_TLS_CA_FILE?.trim() || undefined,
    CLUSTER_NAME: env.CLUSTER_NAME?.trim() || undefined,
  };
}

/**
 * Runs work against the command's target (target.ts). The database drivers are loaded only here,
 * so help and usage errors answer at once.
 */
export async function withTarget<T>(
  settings: TargetSettings,
  io: CliIo,
  work: (target: Target) => Promise<T>,
): Promise<T> {
  const target = await import('./target.ts');
  return target.withTarget(settings, { log: cliLogger(io), note: (text) => io.err(text) }, work);
}

/** openDatabase reports progress at info (noise here) and problems at warn (worth a line on stderr). */
export function cliLogger(io: CliIo): Pick<Logger, 'info' | 'warn'> {
  const describe = (a: unknown, b: unknown): string => {
    if (typeof a === 'string') return a;
    const err = (a as { err?: { message?: string } } | null)?.err;
    return `${typeof b === 'string' ? b : ''}${err?.message ? `: ${err.message}` : ''}`;
  };
  return {
    info: () => {},
    warn: (a: unknown, b?: unknown) => io.err(`warning: ${describe(a, b)}`),
  };
}
