import path from 'node:path';
import type { Logger } from 'pino';
import { connectControl, type ProjectsPort } from '../control/control-client.ts';
import { controlSocketPath } from '../control/socket-path.ts';
import { DataDirLocked } from '../db/data-dir-lock.ts';
import { openDatabase } from '../db/open.ts';
import { createServices } from '../composition/services.ts';
import { connectBusPublisher } from '../cluster/bus.ts';
import { natsTarget } from '../cluster/cluster.ts';
import { CliError } from './errors.ts';
import { checkEmbedded, describePostgres, type TargetSettings } from './where.ts';

export interface Target {
  /** Where the commands go: PostgreSQL, the running server's control socket, or DATA_DIR opened here. */
  via: 'postgres' | 'control-socket' | 'embedded';
  projects: ProjectsPort;
  close(): Promise<void>;
}

export interface TargetOutput {
  log: Pick<Logger, 'info' | 'warn'>;
  /** One line on stderr: where the command goes, so a wrong DATA_DIR shows at once. */
  note(text: string): void;
}

/**
 * Decides where a platform command goes. PostgreSQL admits many clients, so DATABASE_URL is used
 * directly. The embedded PGlite admits one process: when a server holds DATA_DIR its control
 * socket answers and the command goes there; otherwise DATA_DIR is opened (and locked) here, but
 * only when it holds a database already or --init asks for a new one (where.ts).
 */
export async function openTarget(config: TargetSettings, out: TargetOutput): Promise<Target> {
  const { log } = out;
  const dir = path.resolve(config.DATA_DIR);
  if (!config.DATABASE_URL) {
    const remote = await connectControl(controlSocketPath(config.DATA_DIR));
    if (remote) {
      out.note(`Database: the running server's, embedded in ${dir} (through ${controlSocketPath(dir)}).`);
      return { via: 'control-socket', projects: remote, close: async () => {} };
    }
    await checkEmbedded(config, (text) => out.note(`warning: ${text}`));
  }
  let database;
  try {
    database = await openDatabase(config, log);
  } catch (err) {
    if (err instanceof DataDirLocked) {
      throw new CliError(
        `the data directory ${config.DATA_DIR} is in use by process ${err.pid}, and no control socket answers at ` +
          `${controlSocketPath(config.DATA_DIR)}. If that process is the server, wait until it has started; otherwise stop it.`,
      );
    }
    throw err;
  }
  out.note(
    database.driver === 'postgres'
      ? `Database: ${describePostgres(config.DATABASE_URL ?? '')}.`
      : `Database: embedded in ${dir} (no server holds it; opened by this command).`,
  );
  const services = createServices({ db: database.db });
  // Cluster mode: the running nodes hear of what this command changes (a deleted project's sessions close,
  // its cached logins and tokens are forgotten at once; docs/cluster.md §4).
  let nodes: { close(): Promise<void>; liveNodes: number } | undefined;
  if (database.driver === 'postgres' && config.NATS_URL) {
    const name = config.CLUSTER_NAME ?? 'iot';
    if (!/^[A-Za-z0-9_-]{1,40}$/.test(name)) {
      await database.close();
      throw new CliError('CLUSTER_NAME must be 1-40 letters, digits, "_" or "-"');
    }
    try {
      nodes = await connectBusPublisher({
        servers: config.NATS_URL,
        name,
        caFile: config.NATS_TLS_CA_FILE,
        bus: services.bus,
      });
    } catch (err) {
      await database.close();
      throw new CliError(`${(err as Error).message}, or unset it`);
    }
    out.note(`Cluster: ${name}, told through NATS at ${natsTarget(config.NATS_URL).shown}.`);
    if (nodes.liveNodes === 0)
      out.note(
        `No running node of cluster ${name} answers on this NATS: check CLUSTER_NAME (nodes that start later read the database anyway).`,
      );
  }
  return {
    via: database.driver === 'postgres' ? 'postgres' : 'embedded',
    projects: services.projects,
    async close() {
      await nodes?.close();
      await database.close();
    },
  };
}

/** Runs one unit of work against the target and always lets go of the database. */
export async function withTarget<T>(
  config: TargetSettings,
  out: TargetOutput,
  work: (target: Target) => Promise<T>,
): Promise<T> {
  const target = await openTarget(config, out);
  try {
    return await work(target);
  } finally {
    await target.close();
  }
}
