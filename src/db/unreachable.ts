/**
 * A PostgreSQL server that cannot be used at start: not reachable, no such database, or the login
 * refused. Its message is one line naming DATABASE_URL (README "Configuration"), like the
 * configuration errors; `code` keeps the driver's (ECONNREFUSED, 3D000, …).
 */
export class DatabaseUnavailable extends Error {
  override name = 'DatabaseUnavailable';
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/** Network failures of the connection itself (node and postgres.js codes). */
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNRESET',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
]);
/** Login refused: wrong password, unknown role, pg_hba.conf refuses the host. */
const LOGIN = new Set(['28P01', '28000']);

/** host:port/database of the URL, never its password. */
export function describeTarget(url: string): {
  where: string;
  database: string;
  host: string;
  port: string;
  user: string;
} {
  try {
    const u = new URL(url);
    const host = u.hostname || 'localhost';
    const port = u.port || '5432';
    const database = decodeURIComponent(u.pathname.replace(/^\//, '')) || decodeURIComponent(u.username) || 'postgres';
    return { where: `${host}:${port}`, database, host, port, user: decodeURIComponent(u.username) || 'postgres' };
  } catch {
    return { where: 'the server', database: '?', host: '?', port: '?', user: '?' };
  }
}

/** The one-line explanation of a connection failure, or undefined when it is some other error. */
export function databaseUnavailable(err: unknown, url: string): DatabaseUnavailable | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return undefined;
  const reason = err instanceof Error ? err.message : String(err);
  const t = describeTarget(url);
  if (code === '3D000') {
    return new DatabaseUnavailable(
      `DATABASE_URL: database "${t.database}" does not exist on ${t.where}: create it (createdb -h ${t.host} -p ${t.port} -U ${t.user} ${t.database}) or correct the URL.`,
      code,
    );
  }
  if (LOGIN.has(code)) {
    return new DatabaseUnavailable(
      `DATABASE_URL: ${t.where} refused the login (${reason}): check the user and password in the URL.`,
      code,
    );
  }
  if (UNREACHABLE.has(code)) {
    return new DatabaseUnavailable(
      `DATABASE_URL: cannot reach PostgreSQL at ${t.where} (${reason}): start the server or correct the URL.`,
      code,
    );
  }
  return undefined;
}
