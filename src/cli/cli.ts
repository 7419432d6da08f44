import { ConfigError } from '../config.ts';
import { ControlProtocolError } from '../control/control-client.ts';
import { AppError } from '../errors.ts';
import { PROGRAM, type CliIo, type Command } from './command.ts';
import { CliError, UsageError } from './errors.ts';
import { migrate } from './commands/migrate.ts';
import { projectCreate } from './commands/project-create.ts';
import { projectDelete } from './commands/project-delete.ts';
import { projectList } from './commands/project-list.ts';

const COMMANDS: Command[] = [projectCreate, projectList, projectDelete, migrate];

function overview(commands: Command[]): string {
  const names = commands.map((c) => c.path.join(' '));
  const pad = Math.max(...names.map((n) => n.length));
  return commands.map((c, i) => `  ${names[i]?.padEnd(pad)}  ${c.summary}`).join('\n');
}

const HELP = `Usage: ${PROGRAM} <command> [options]

The operator's command line: projects (tenants) and the database.

Commands:
${overview(COMMANDS)}

Run '${PROGRAM} <command> --help' for the options of a command.

With DATABASE_URL the commands use that PostgreSQL. Otherwise they use the embedded database
in DATA_DIR (default ./data): through the running server's control socket (DATA_DIR/control.sock)
when it holds the database, or by opening DATA_DIR directly when no server does — only if a
database is there already (--init creates a new, empty one). Each command names on stderr the
database it used.

Exit codes: 0 done, 1 failed, 2 invalid command line.`;

/**
 * Selects a command by its leading words (the words before the first flag). A group's word alone
 * (`project --help`) shows the group's commands; `help <command>` shows that command's help.
 */
function dispatch(argv: string[]): { command: Command; rest: string[] } | { help: string } {
  const firstFlag = argv.findIndex((a) => a.startsWith('-'));
  const words = firstFlag === -1 ? argv : argv.slice(0, firstFlag);
  const asked = argv.includes('--help') || argv.includes('-h');
  const command = COMMANDS.find((c) => c.path.every((w, i) => words[i] === w));
  if (command) return { command, rest: argv.slice(command.path.length) };
  if (argv.length === 0) return { help: HELP };
  if (words.length === 0) {
    if (asked) return { help: HELP };
    throw new UsageError(`unknown option '${argv[0]}'`);
  }
  if (words[0] === 'help') {
    if (words.length === 1) return { help: HELP };
    return dispatch([...words.slice(1), '--help']);
  }
  const group = COMMANDS.filter((c) => c.path.length > 1 && c.path[0] === words[0]);
  if (group.length === 0) throw new UsageError(`unknown command '${words[0]}'`);
  if (words.length > 1) throw new UsageError(`unknown command '${words.slice(0, 2).join(' ')}'`);
  if (asked) return { help: `Usage: ${PROGRAM} ${words[0]} <command> [options]\n\nCommands:\n${overview(group)}` };
  throw new UsageError(`'${words[0]}' needs a command:\n${overview(group)}`);
}

/** Runs one command line; returns the exit code. Expected failures print one message, no stack. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  try {
    const selected = dispatch(argv);
    if ('help' in selected) {
      io.out(selected.help);
      return 0;
    }
    try {
      await selected.command.run(selected.rest, io);
    } catch (err) {
      if (err instanceof UsageError) {
        io.err(`error: ${err.message}\nRun '${PROGRAM} ${selected.command.path.join(' ')} --help' for usage.`);
        return 2;
      }
      throw err;
    }
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`error: ${err.message}\nRun '${PROGRAM} --help' for usage.`);
      return 2;
    }
    io.err(`error: ${describe(err)}`);
    return 1;
  }
}

function describe(err: unknown): string {
  if (err instanceof AppError) {
    const fields = err.errors.map((e) => `\n  ${e.path}: ${e.message}`).join('');
    return `${err.message}${fields}`;
  }
  if (err instanceof CliError || err instanceof ConfigError || err instanceof ControlProtocolError) return err.message;
  // System and database errors (ECONNREFUSED, 28P01, …) explain themselves; a stack would not help.
  const code = (err as { code?: unknown } | null)?.code;
  if (err instanceof Error && typeof code === 'string') return `${err.message} (${code})`;
  return `unexpected failure, please report it:\n${err instanceof Error ? (err.stack ?? err.message) : String(err)}`;
}

const io: CliIo = {
  env: process.env,
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
};
process.exitCode = await runCli(process.argv.slice(2), io);
