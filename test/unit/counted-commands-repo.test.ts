import { describe, expect, it } from 'vitest';
import type { CommandsRepository } from '../../src/db/repositories/commands.repository.ts';
import { countedCommandsRepo } from '../../src/domain/commands/counted-repo.ts';

describe('the counted command log', () => {
  it('counts commands sent back to the queue by what the update changed, not by what was asked', async () => {
    const counts: Array<[string, number]> = [];
    // Of three commands asked back, one was replied to meanwhile: the conditional update changes two.
    const repo = { requeue: async () => 2 } as unknown as CommandsRepository;
    const counted = countedCommandsRepo(repo, { commandState: (state, n = 1) => void counts.push([state, n]) });
    expect(await counted.requeue('p', ['a', 'b', 'c'], Date.now())).toBe(2);
    expect(counts).toEqual([['queued', 2]]);
    const none = countedCommandsRepo({ requeue: async () => 0 } as unknown as CommandsRepository, {
      commandState: (state, n = 1) => void counts.push([state, n]),
    });
    await none.requeue('p', ['d'], Date.now());
    expect(counts).toEqual([['queued', 2]]);
  });
});
