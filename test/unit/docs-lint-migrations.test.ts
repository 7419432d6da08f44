import { describe, expect, it } from 'vitest';
import { lint } from '../helpers/docs-lint.ts';

/** Built so this file names no issue itself. */
const ISSUE = 'iss' + 'ue';
const H = '#';

function lintOf(files: Record<string, string>) {
  const map = new Map(Object.entries(files));
  return lint({ files: map, exists: (p) => map.has(p) });
}

/**
 * Applied migrations are never edited (drizzle keeps each file's hash), so an old comment that names
 * an issue stays; the rule still holds for everything else, SQL outside drizzle/ included.
 */
describe('docs lint: applied migrations', () => {
  const comment = `-- Attribute history (${ISSUE} ${H}4), kept out of schema.ts\nSELECT 1;\n`;

  it('leaves drizzle/*.sql alone', () => {
    expect(lintOf({ 'drizzle/0002_x.sql': comment })).toEqual([]);
  });

  it('still flags the same text elsewhere', () => {
    expect(lintOf({ 'bench/x.sql': comment, 'drizzle/meta/notes.md': comment }).length).toBeGreaterThanOrEqual(2);
    expect(lintOf({ 'bench/x.sql': comment })[0]).toMatch(/^bench\/x\.sql:1: issue number/);
  });
});
