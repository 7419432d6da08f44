import { CreateProjectBody } from '../../http/routes/platform/platform.schema.ts';
import {
  parseFlags,
  PROGRAM,
  TARGET_HELP,
  targetConfig,
  targetOptions,
  validate,
  withTarget,
  type Command,
} from '../command.ts';
import { UsageError } from '../errors.ts';

const help = `Usage: ${PROGRAM} project create --name <name> [options]

Creates a project (a tenant) with its first API app and its administrator account "admin",
and prints them as JSON on stdout:
  {"id","name","project_key","app":{"app_id","access_key","secret_key"},"admin":{"account","password"}}
The secret_key and the password are shown only here: store them now.

Options:
  --name <name>           project name (1-128 characters, required)
  --descr <text>          description (up to 1024 characters)
  --tag <key=value>       a tag; repeat for several
  --device-quota <n>      most devices the project may have (default: no limit)

${TARGET_HELP}`;

export const projectCreate: Command = {
  path: ['project', 'create'],
  summary: 'create a project and print its app credentials and admin password',
  help,
  async run(argv, io) {
    const { values, positionals } = parseFlags({
      args: argv,
      allowPositionals: true,
      options: {
        ...targetOptions,
        name: { type: 'string' },
        descr: { type: 'string' },
        tag: { type: 'string', multiple: true },
        'device-quota': { type: 'string' },
      },
    });
    if (values.help) return io.out(help);
    if (positionals.length > 0)
      throw new UsageError(`unexpected argument '${positionals[0]}' (the name is given with --name)`);
    if (values.name === undefined) throw new UsageError('--name is required');
    const tags = values.tag ?? [];
    const badTag = tags.find((t) => !/^[^=]+=/.test(t));
    if (badTag !== undefined) throw new UsageError(`--tag '${badTag}': must be key=value`);
    const quota = values['device-quota'];
    const input = validate(
      CreateProjectBody,
      {
        name: values.name,
        descr: values.descr,
        ...(tags.length > 0
          ? { tags: Object.fromEntries(tags.map((t) => [t.slice(0, t.indexOf('=')), t.slice(t.indexOf('=') + 1)])) }
          : {}),
        ...(quota !== undefined ? { device_quota: /^\d{1,9}$/.test(quota) ? Number(quota) : quota } : {}),
      },
      { tags: 'tag' },
    );
    const config = targetConfig(values, io.env);
    const created = await withTarget(config, io, (t) => t.projects.create(input));
    io.out(JSON.stringify(created, null, 2));
    io.err('Store the app secret_key and the admin password now: they are not shown again.');
  },
};
