import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { migrate } from '../../src/cli/commands/migrate.ts';
import { projectCreate } from '../../src/cli/commands/project-create.ts';
import { projectDelete } from '../../src/cli/commands/project-delete.ts';
import { projectList } from '../../src/cli/commands/project-list.ts';
import { CreatedProject } from '../../src/http/routes/platform/platform.schema.ts';

/** The CLI the README shows is the CLI there is (README "First API call", "Projects (tenants)"). */
const README = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
const COMMANDS = [projectCreate, projectList, projectDelete, migrate];

/** The words after `npm [-s] run [-s] cli [-s] --` of every CLI line of the README (code and inline code). */
function cliLines(): string[][] {
  const lines: string[][] = [];
  // `npm run cli -- …` from a checkout, `node dist/src/cli/cli.js …` inside the image.
  for (const m of README.matchAll(
    /(?:npm (?:-s )?run (?:-s )?cli (?:-s )?--|node dist\/src\/cli\/cli\.js) ([^`\n#]*)/g,
  )) {
    const words = (m[1] ?? '')
      .trim()
      .split(/\s+/)
      .filter((w) => w !== '…' && w !== '');
    // `<command>` in prose names no command.
    if (words.length > 0 && !words[0]!.startsWith('<')) lines.push(words);
  }
  return lines;
}

describe("the README's CLI", () => {
  it('shows only commands and flags that exist', () => {
    const lines = cliLines();
    expect(lines.length).toBeGreaterThanOrEqual(6);
    const wrong: string[] = [];
    for (const words of lines) {
      if (words[0] === '--help') continue;
      const command = COMMANDS.find((c) => c.path.every((w, i) => words[i] === w));
      if (!command) {
        wrong.push(`no command: ${words.join(' ')}`);
        continue;
      }
      for (const flag of words.filter((w) => w.startsWith('--') || w.startsWith('[--'))) {
        const name = flag.replace(/^\[/, '').replace(/[=\]].*$/, '');
        if (!new RegExp(`(^|\\s)${name}\\b`, 'm').test(command.help))
          wrong.push(`${command.path.join(' ')}: no ${name}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("shows project create's output as the command prints it", () => {
    const block = /npm run cli -- project create --name "My plant"\n```[\s\S]*?```json\n([\s\S]*?)```/.exec(
      README,
    )?.[1];
    expect(block).toBeDefined();
    const shown = JSON.parse(block ?? '') as unknown;
    // Same fields, nothing else, and the layout of JSON.stringify(created, null, 2) (project-create.ts).
    expect(
      CreatedProject.strict()
        .extend({ app: CreatedProject.shape.app.strict(), admin: CreatedProject.shape.admin.strict() })
        .safeParse(shown).success,
    ).toBe(true);
    expect(block).toBe(`${JSON.stringify(shown, null, 2)}\n`);
  });
});
