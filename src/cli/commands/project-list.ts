import type { ProjectSummary } from '../../control/control-client.ts';
import { parseFlags, PROGRAM, TARGET_HELP, targetConfig, targetOptions, withTarget, type Command } from '../command.ts';
import { UsageError } from '../errors.ts';

const help = `Usage: ${PROGRAM} project list [--json] [options]

Lists every project, newest first: a table for people, or with --json an array of
{"id","name","descr","project_key","create_time","device_count"} (create_time in ms).

Options:
  --json                  print JSON instead of a table

${TARGET_HELP}`;

/** Terminal columns of a string: East Asian wide characters take two. */
function width(text: string): number {
  let n = 0;
  for (const ch of text)
    n +=
      /[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6\u{20000}-\u{3fffd}]/u.test(
        ch,
      )
        ? 2
        : 1;
  return n;
}

/** Names come from API callers: control characters must not reach the operator's terminal. */
const printable = (text: string) => text.replace(/\p{Cc}/gu, '?');

export function renderTable(header: string[], rows: string[][]): string {
  const cells = [header, ...rows.map((r) => r.map(printable))];
  const widths = header.map((_, c) => Math.max(...cells.map((r) => width(r[c] ?? ''))));
  return cells
    .map((r) =>
      r
        .map((cell, c) => (c === r.length - 1 ? cell : cell + ' '.repeat((widths[c] ?? 0) - width(cell))))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function table(items: ProjectSummary[]): string {
  if (items.length === 0) return 'No projects.';
  return renderTable(
    ['ID', 'NAME', 'DEVICES', 'CREATED (UTC)', 'DESCRIPTION'],
    items.map((p) => [
      p.id,
      p.name,
      String(p.device_count),
      new Date(p.create_time).toISOString().slice(0, 19).replace('T', ' '),
      p.descr,
    ]),
  );
}

export const projectList: Command = {
  path: ['project', 'list'],
  summary: 'list projects (a table, or JSON with --json)',
  help,
  async run(argv, io) {
    const { values, positionals } = parseFlags({
      args: argv,
      allowPositionals: true,
      options: { ...targetOptions, json: { type: 'boolean' } },
    });
    if (values.help) return io.out(help);
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    const items = await withTarget(targetConfig(values, io.env), io, (t) => t.projects.list());
    io.out(values.json ? JSON.stringify(items, null, 2) : table(items));
  },
};
