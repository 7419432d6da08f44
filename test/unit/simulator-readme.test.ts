import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseSubscribeOptions } from '../../simulator/commands/subscribe.ts';
import { parseOptions } from '../../simulator/options.ts';

/** Every `npm run sim -- …` line of simulator/README.md parses as written (flags exist, values are valid). */
const README = readFileSync(fileURLToPath(new URL('../../simulator/README.md', import.meta.url)), 'utf8');

interface Line {
  text: string;
  env: Record<string, string>;
  argv: string[];
}

/** Shell words of a line, with `$VAR`/`"$VAR"` and `<placeholder>` filled in. */
function words(text: string): string[] {
  const filled = text.replace(/"\$\w+"|\$\w+/g, 'x').replace(/<[^>]+>/g, 'placeholder');
  return [...filled.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]!);
}

function simLines(): Line[] {
  const lines: Line[] = [];
  for (const block of README.matchAll(/```sh\n([\s\S]*?)```/g)) {
    for (const raw of block[1]!.replace(/\\\n\s*/g, ' ').split('\n')) {
      const m = /^((?:\w+=\S+ )*)npm run sim -- (.*)$/.exec(raw.trim());
      if (!m) continue;
      const env = Object.fromEntries(
        m[1]!
          .trim()
          .split(/\s+/)
          .filter(Boolean)
          .map((kv) => kv.split('=', 2) as [string, string]),
      );
      lines.push({ text: raw.trim(), env, argv: words(m[2]!.replace(/\s+#.*$/, '')) });
    }
  }
  return lines;
}

describe('simulator/README.md', () => {
  const lines = simLines();

  it('has the examples it promises', () => {
    expect(lines.length).toBeGreaterThanOrEqual(9);
    expect(lines.some((l) => l.argv[0] === 'subscribe')).toBe(true);
    expect(lines.some((l) => l.argv.includes('--gateway'))).toBe(true);
  });

  for (const line of simLines()) {
    it(`parses: ${line.text.slice(0, 100)}`, () => {
      if (line.argv[0] === 'subscribe') expect(() => parseSubscribeOptions(line.argv.slice(1), line.env)).not.toThrow();
      else expect(() => parseOptions(line.argv, line.env)).not.toThrow();
    });
  }
});
