import { describe, expect, it } from 'vitest';
import { createIngest } from '../../src/domain/telemetry/ingest.ts';
import { createTestApp } from '../helpers/app.ts';
import { openPrivateTestDatabase } from '../helpers/db.ts';

/**
 * A connection lost between a batch's commit and its answer (a killed backend, a failover): the write
 * failed as far as the pipeline can tell, but the rows are in. The retry asks whether the batch
 * committed and does not write it twice.
 */
describe('ingest: a lost answer to a committed batch', () => {
  it('asks whether the batch committed before writing it again', async () => {
    const stored: number[] = [];
    const commits = new Set<string>();
    let lose = 1;
    const ingest = createIngest<number>({
      write: async (rows, batchId) => {
        stored.push(...rows);
        commits.add(batchId);
        // Committed, then the connection went away before the answer came.
        if (lose-- > 0) throw Object.assign(new Error('connection ended'), { code: 'CONNECTION_ENDED' });
      },
      committed: async (batchId) => commits.has(batchId),
      retryMinMs: 1,
      batchDelayMs: 0,
    });
    await ingest.submit([1, 2, 3]);
    expect(stored).toEqual([1, 2, 3]);
    expect(ingest.stats().retries).toBe(1);
  });

  it('never writes blind while it cannot ask: a commit record that exists already means committed', async () => {
    const stored: number[] = [];
    const commits = new Set<string>();
    let lose = 1;
    let askFails = 2;
    const ingest = createIngest<number>({
      write: async (rows, batchId) => {
        if (commits.has(batchId))
          throw Object.assign(new Error('duplicate key value violates unique constraint "ingest_commits_pkey"'), {
            code: '23505',
          });
        stored.push(...rows);
        commits.add(batchId);
        if (lose-- > 0) throw Object.assign(new Error('connection ended'), { code: 'CONNECTION_ENDED' });
      },
      // The database is still away when it is first asked.
      committed: async (batchId) => {
        if (askFails-- > 0) throw Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' });
        return commits.has(batchId);
      },
      isCommitConflict: (err) => (err as { code?: string }).code === '23505',
      retryMinMs: 1,
      batchDelayMs: 50,
    });
    // Two submissions in one batch: a refused batch would be split and written again one by one.
    await Promise.all([ingest.submit([1]), ingest.submit([2])]);
    expect(stored).toEqual([1, 2]);
  });

  it('writes again when the lost attempt did not commit', async () => {
    const stored: number[] = [];
    let fail = 2;
    const ingest = createIngest<number>({
      write: async (rows) => {
        if (fail-- > 0) throw Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' });
        stored.push(...rows);
      },
      committed: async () => false,
      retryMinMs: 1,
      batchDelayMs: 0,
    });
    await ingest.submit([7]);
    expect(stored).toEqual([7]);
  });

  it('records the batch with its rows, in the same statement or transaction (history repository)', async () => {
    const ctx = await createTestApp({}, { database: await openPrivateTestDatabase() });
    try {
      const repo = ctx.services.historyStore;
      const now = Date.now();
      await repo.ensurePartitions([repo.dayOf(now)]);
      const row = {
        projectId: 'p',
        deviceId: 'd',
        identifier: 'x',
        ts: now,
        value: 1,
        dataType: 'number' as const,
        attrType: 'report' as const,
        history: true,
      };
      await repo.insertAlone([row], 'batch-alone', now);
      await ctx.database.db.transaction((tx) => repo.insert(tx, [row], 'batch-tx', now));
      expect(await repo.committed('batch-alone')).toBe(true);
      expect(await repo.committed('batch-tx')).toBe(true);
      expect(await repo.committed('batch-never')).toBe(false);
      await repo.pruneCommits(now + 1);
      expect(await repo.committed('batch-alone')).toBe(false);
    } finally {
      await ctx.close();
    }
  });
});
