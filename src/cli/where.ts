import { existsSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { Config } from '../config.ts';
import { CliError } from './errors.ts';

/** The settings that decide where a command goes, flags applied (README "Projects (tenants)"). */
export type TargetSettings = Pick<Config, 'DATA_DIR' | 'DATABASE_URL' | 'HTTP_PORT' | 'HOST'> & {
  /** --init: a DATA_DIR without a database may get a new, empty one. */
  init: boolean;
  /** Cluster mode (docs/cluster.md §4): with DATABASE_URL, changes are told to the running nodes over NATS. */
  NATS_URL?: string | undefined;
  CLUSTER_NAME?: string | undefined;
  NATS_TLS_CA_FILE?: string | undefined;
};

/** PGlite keeps its cluster in DATA_DIR/pg (src/db/client.ts); PG_VERSION is written when it is initialised. */
export function embeddedDatabaseExists(dataDir: string): boolean {
  return existsSync(path.join(dataDir, 'pg', 'PG_VERSION'));
}

/** `postgres://user:secret@host:5432/db` → `host:5432/db`: the place, never the password. */
export function describePostgres(url: string): string {
  try {
    const u = new URL(url);
    return `PostgreSQL at ${u.host}${u.pathname}`;
  } catch {
    return 'PostgreSQL';
  }
}

const PROBE_TIMEOUT_MS = 500;

/**
 * Whether one of our servers answers on the configured HTTP port of this machine (its `/livez`
 * answer). Used only to explain: a server there whose control socket is not in DATA_DIR uses
 * another data directory (or PostgreSQL), so the operator is about to change the wrong database.
 */
export async function serverAnswers(settings: Pick<TargetSettings, 'HTTP_PORT' | 'HOST'>): Promise<boolean> {
  // HTTP_PORT=off: the server serves HTTPS only (docs/tls.md); nothing to ask without a certificate check.
  if (settings.HTTP_PORT === 'off') return false;
  const port = settings.HTTP_PORT;
  const host = settings.HOST === '0.0.0.0' || settings.HOST === '::' ? '127.0.0.1' : settings.HOST;
  return new Promise((resolve) => {
    const req = http.get({ host, port, path: '/livez', agent: false, timeout: PROBE_TIMEOUT_MS }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (text.length < 1024) text += chunk;
      });
      res.on('end', () => {
        try {
          const body = JSON.parse(text) as { result?: unknown; info?: { status?: unknown } };
          resolve(res.statusCode === 200 && body.result === true && body.info?.status === 'ok');
        } catch {
          resolve(false);
        }
      });
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

/**
 * Before the CLI opens DATA_DIR itself (no server answered on its control socket): refuses to make a
 * new database there unless --init was given, since a missing database almost always means the
 * server runs with another DATA_DIR, and warns when a server answers on the HTTP port all the same.
 */
export async function checkEmbedded(settings: TargetSettings, warn: (text: string) => void): Promise<void> {
  const dir = path.resolve(settings.DATA_DIR);
  const exists = embeddedDatabaseExists(settings.DATA_DIR);
  if (exists || !settings.init) {
    const elsewhere = await serverAnswers(settings);
    if (!exists) {
      const why = elsewhere
        ? `A server answers on port ${settings.HTTP_PORT}, but its data is not here: give the command the server's ` +
          'DATA_DIR (or --data-dir), or its DATABASE_URL when it uses PostgreSQL.'
        : 'Start the server first (`npm start` creates it), or point DATA_DIR (or --data-dir) at the directory the ' +
          'server uses, or set DATABASE_URL when it uses PostgreSQL.';
      throw new CliError(`no database in ${dir}. ${why} To create a new, empty database in ${dir}, add --init.`);
    }
    if (elsewhere) {
      warn(
        `a server answers on port ${settings.HTTP_PORT} but does not hold ${dir}: this command uses the database in ` +
          `${dir}, not that server's. Give it the server's DATA_DIR (or --data-dir) to reach the server.`,
      );
    }
  }
}
