import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openPglite, openPostgres, type Database } from '../../src/db/client.ts';
import type { TelemetryRow } from '../../src/db/repositories/history.repository.ts';
import { createServices } from '../../src/composition/services.ts';
import { DAY_MS } from '../../src/lib/time.ts';
import { createPrivatePostgres, type PrivatePostgres } from '../helpers/db.ts';
import { serverEnv, spawnTs, type Spawned } from '../helpers/process.ts';

/**
 * `npm start` applies the history retention by itself: history older than the default retention
 * (365 days) that is in the database when the server starts is gone after its first pass (about
 * 30 s after the start), the recent history stays. On the embedded database, or on a PostgreSQL
 * database of its own when TEST_DATABASE_URL is set.
 */
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'iot-retention-start-'));
const procs: Spawned[] = [];
let pg: PrivatePostgres | undefined;
afterAll(async () => {
  for (const p of procs) p.child.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
  await pg?.drop();
});

async function open(): Promise<Database> {
  if (pg) return openPostgres(pg.url, { max: 1 });
  const lite = await openPglite({ dataDir });
  await lite.migrate();
  return lite;
}

describe('the server at start', () => {
  it('drops history older than the retention without being asked', async () => {
    pg = await createPrivatePostgres();
    const now = Date.now();
    let database = await open();
    const services = createServices({ db: database.db });
    const project = await services.projects.create({ name: 'old history' });
    const device = await services.devices.create({ projectId: project.id }, { name: 'logger' });
    const store = services.historyStore;
    const rows: TelemetryRow[] = [400, 2].map((days) => ({
      projectId: project.id,
      deviceId: device.id,
      identifier: 'v',
      ts: now - days * DAY_MS,
      value: days,
      dataType: 'number',
      attrType: 'report',
      history: true,
    }));
    await store.ensurePartitions(rows.map((r) => store.dayOf(r.ts)));
    await database.db.transaction((tx) => store.write(tx, rows));
    await services.ingest.stop();
    await database.close();

    const server = spawnTs(
      'src/main.ts',
      [],
      serverEnv(dataDir, pg?.url, { JWT_SECRET: 'retention-start-jwt-secret-0123456789abcdef' }),
    );
    procs.push(server);
    const [, dropped] = await server.waitFor(/"dropped":(\d+)[^\n]*"msg":"history retention applied"/, 120_000);
    expect(Number(dropped)).toBeGreaterThanOrEqual(1);
    server.child.kill('SIGTERM');
    expect(await server.exit()).toBe(0);

    database = await open();
    try {
      const kept = await createServices({ db: database.db }).historyStore.series(
        project.id,
        device.id,
        'v',
        now - 500 * DAY_MS,
        now,
        10,
        0,
      );
      expect(kept.map((p) => p.value)).toEqual([2]);
    } finally {
      await database.close();
    }
  }, 240_000);
});
