import { Id } from '../../http/routes/common.schema.ts';
import { parseFlags, PROGRAM, TARGET_HELP, targetConfig, targetOptions, withTarget, type Command } from '../command.ts';
import { UsageError } from '../errors.ts';

const help = `Usage: ${PROGRAM} project delete <id> --yes [options]

Deletes a project and all of its data: devices, history, device types, groups, customers,
API apps and administrators. Tokens issued for it stop working. This cannot be undone, so
the command refuses to run without --yes.

Options:
  --yes                   confirm the deletion

${TARGET_HELP}`;

export const projectDelete: Command = {
  path: ['project', 'delete'],
  summary: 'delete a project and all of its data (needs --yes)',
  help,
  async run(argv, io) {
    const { values, positionals } = parseFlags({
      args: argv,
      allowPositionals: true,
      options: { ...targetOptions, yes: { type: 'boolean' } },
    });
    if (values.help) return io.out(help);
    if (positionals.length !== 1)
      throw new UsageError(positionals.length === 0 ? 'the project <id> is required' : 'give exactly one project <id>');
    const checked = Id.safeParse(positionals[0]);
    if (!checked.success) throw new UsageError(`project <id>: ${checked.error.issues[0]?.message ?? 'invalid'}`);
    const id = checked.data;
    if (!values.yes) {
      throw new UsageError(`refusing to delete project ${id} and all of its data without --yes`);
    }
    await withTarget(targetConfig(values, io.env), io, (t) => t.projects.delete(id));
    io.out(`Deleted project ${id}.`);
  },
};
