import path from 'node:path';
import { controlSocketPath } from '../../control/socket-path.ts';
import { cliLogger, parseFlags, PROGRAM, TARGET_HELP, targetConfig, targetOptions, type Command } from '../command.ts';
import { CliError, UsageError } from '../errors.ts';

const help = `Usage: ${PROGRAM} migrate [options]

Brings the database schema up to date (the SQL migrations of drizzle/) and exits non-zero
on failure. The server also migrates when it starts; run this before starting several
nodes on one PostgreSQL, or to check a database. TimescaleDB is enabled when the server
offers the extension.

${TARGET_HELP}`;

export const migrate: Command = {
  path: ['migrate'],
  summary: 'apply the database migrations',
  help,
  async run(argv, io) {
    const { values, positionals } = parseFlags({ args: argv, allowPositionals: true, options: targetOptions });
    if (values.help) return io.out(help);
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    const config = targetConfig(values, io.env);
    const [{ openDatabase }, { DataDirLocked }, { connectControl }, { checkEmbedded }] = await Promise.all([
      import('../../db/open.ts'),
      import('../../db/data-dir-lock.ts'),
      import('../../control/control-client.ts'),
      import('../where.ts'),
    ]);
    if (!config.DATABASE_URL) {
      if (await connectControl(controlSocketPath(config.DATA_DIR))) {
        throw new CliError(
          `a server is running on ${path.resolve(config.DATA_DIR)}: it applied the migrations when it started. ` +
            'Stop it to migrate from the command line.',
        );
      }
      await checkEmbedded(config, (text) => io.err(`warning: ${text}`));
    }
    let database;
    try {
      database = await openDatabase(config, cliLogger(io));
    } catch (err) {
      if (err instanceof DataDirLocked) {
        throw new CliError(
          `the data directory ${config.DATA_DIR} is in use by process ${err.pid}. A running server applied the ` +
            'migrations when it started; stop it to migrate from the command line.',
        );
      }
      throw err;
    }
    try {
      const where =
        database.driver === 'postgres'
          ? `PostgreSQL, TimescaleDB ${database.timescale ? 'enabled' : 'not available'}`
          : `embedded database in ${path.resolve(config.DATA_DIR)}`;
      io.out(`Migrations applied (${where}).`);
    } finally {
      await database.close();
    }
  },
};
