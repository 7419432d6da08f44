import { pino, type Logger, type LoggerOptions } from 'pino';

/**
 * The one way errors and requests reach the log. Database drivers carry credentials on their
 * errors: drizzle puts every query parameter (device tokens, project keys, password hashes) into
 * its message and stack, postgres.js keeps `query`, `parameters` and `args` on the error, and
 * PostgreSQL's `detail` quotes the values of a violated key. None of that is logged: an error is
 * reduced to its type, message, code, stack frames and cause chain, and the message is scrubbed.
 */

export interface SerializedError {
  type?: string;
  message: string;
  code?: string | number;
  statusCode?: number;
  stack?: string;
  cause?: SerializedError;
  errors?: SerializedError[];
}

const MAX_CAUSES = 5;
const MAX_AGGREGATED = 5;
const REDACTED = '[redacted]';

/**
 * A run of 16+ token characters mixing upper case, lower case and digits: how every credential the
 * server issues looks (random base62 keys, JWT segments, base64url secrets, argon2 fields). Ids are
 * lower-case hex and stay readable; paths and host names are split at `/` and `.` and mostly stay too.
 */
const TOKEN_RUN = /[A-Za-z0-9_\-+=$]{16,}/g;
const looksLikeCredential = (run: string) => /[A-Z]/.test(run) && /[a-z]/.test(run) && /[0-9]/.test(run);

/** A message without query parameters, connection-string passwords or credential-looking values. */
export function scrubMessage(text: string): string {
  return text
    .split(/\nparams:/)[0]!
    .replace(/(\/\/[^:/@\s]+:)[^@\s]*@/g, `$1${REDACTED}@`)
    .replace(TOKEN_RUN, (run) => (looksLikeCredential(run) ? REDACTED : run));
}

/** Only the frames: the first lines of a stack repeat the message (with drizzle's parameters). */
function framesOf(stack: unknown): string | undefined {
  if (typeof stack !== 'string') return undefined;
  const frames = stack.split('\n').filter((line) => line.trimStart().startsWith('at '));
  return frames.length ? frames.join('\n') : undefined;
}

export function serializeError(err: unknown, depth = 0): SerializedError {
  if (err === null || typeof err !== 'object') return { type: typeof err, message: scrubMessage(String(err)) };
  const e = err as {
    name?: unknown;
    message?: unknown;
    code?: unknown;
    statusCode?: unknown;
    stack?: unknown;
    cause?: unknown;
    errors?: unknown;
  };
  const out: SerializedError = { message: scrubMessage(typeof e.message === 'string' ? e.message : '') };
  // A plain `{ message }` logged under `err` has no type worth naming.
  const type = typeof e.name === 'string' ? e.name : err instanceof Error ? err.constructor.name : undefined;
  if (type) out.type = type;
  if (typeof e.code === 'string' || typeof e.code === 'number') out.code = e.code;
  if (typeof e.statusCode === 'number') out.statusCode = e.statusCode;
  const stack = framesOf(e.stack);
  if (stack) out.stack = stack;
  if (e.cause !== undefined && depth < MAX_CAUSES) out.cause = serializeError(e.cause, depth + 1);
  if (Array.isArray(e.errors) && depth < MAX_CAUSES)
    out.errors = e.errors.slice(0, MAX_AGGREGATED).map((x) => serializeError(x, depth + 1));
  return out;
}

/** The device HTTP API carries the access token in its path (device-protocol.md §5). */
export function scrubUrl(url: string): string {
  return scrubMessage(url.replace(/^(\/device\/v1\/)(?!certificate(?:[/?]|$))[^/?]+/, `$1${REDACTED}`));
}

interface RequestLike {
  method?: string;
  url?: string;
  host?: string;
  ip?: string;
  socket?: { remotePort?: number };
}

/** Fastify's request fields, the URL scrubbed; never headers or bodies. */
function serializeRequest(req: RequestLike) {
  return {
    method: req.method,
    url: typeof req.url === 'string' ? scrubUrl(req.url) : undefined,
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket?.remotePort,
  };
}

/** Options of every pino logger of the server (main.ts; Fastify adopts the serializers). */
export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    serializers: { err: serializeError, error: serializeError, req: serializeRequest },
    redact: {
      paths: [
        'req.headers.authorization',
        '*.password',
        '*.secret_key',
        '*.access_key',
        '*.access_token',
        '*.project_key',
        '*.view_secret',
        '*.secret',
        '*.body',
      ],
      censor: REDACTED,
    },
    hooks: {
      // `log.error(err)` makes the error's message the line's message: scrub it like the error.
      logMethod(args, method) {
        const [first, second] = args as unknown[];
        if (first instanceof Error && typeof second !== 'string') {
          return method.apply(this, [{ err: first }, scrubMessage(first.message), ...args.slice(1)] as Parameters<
            typeof method
          >);
        }
        return method.apply(this, args);
      },
    },
  };
}

export function createLogger(level: string): Logger {
  return pino(loggerOptions(level));
}
