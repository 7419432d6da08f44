import { describe, expect, it } from 'vitest';
import { renderTable } from '../../src/cli/commands/project-list.ts';

describe('project list table', () => {
  it('aligns columns by terminal width, counting wide characters as two', () => {
    expect(
      renderTable(
        ['ID', 'NAME', 'N'],
        [
          ['a', '温室', '1'],
          ['bb', 'pump', '22'],
        ],
      ).split('\n'),
    ).toEqual(['ID  NAME  N', 'a   温室  1', 'bb  pump  22']);
  });

  it('shows control characters of names as ?, so a name cannot drive the terminal', () => {
    expect(renderTable(['NAME'], [['evil\u001b[2Jname\n']])).toBe('NAME\nevil?[2Jname?');
  });
});
