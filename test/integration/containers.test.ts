import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StartedPostgreSqlContainer } from '@testcontainers/postgresql';
import type * as Testcontainers from 'testcontainers';
import { migrationsFolder, rowsOf } from '../../src/db/client.ts';
import { openDatabase, type OpenedDatabase } from '../../src/db/open.ts';
import { createServices } from '../../src/composition/services.ts';

const IMAGE = 'timescale/timescaledb:2.17.2-pg16'; // the release docker-compose.yml runs

/**
 * The reason these tests cannot run here, or null when a container runtime answers. testcontainers
 * is imported lazily: loading it can itself fail (its HTTP client needs a newer Node than ours).
 */
async function containerRuntimeProblem(): Promise<string | null> {
  const message = (err: unknown) => (err instanceof Error ? err.message : String(err));
  let testcontainers: typeof Testcontainers;
  try {
    testcontainers = await import('testcontainers');
  } catch (err) {
    const wanted = (createRequire(import.meta.url)('testcontainers/package.json') as { engines?: { node?: string } })
      .engines?.node;
    return `testcontainers cannot be loaded under Node ${process.versions.node}${wanted ? ` (it requires Node ${wanted})` : ''}: ${message(err)}`;
  }
  try {
    await testcontainers.getContainerRuntimeClient();
    return null;
  } catch (err) {
    return `no container runtime found: ${message(err)}`;
  }
}

const problem = await containerRuntimeProblem();
if (problem) console.warn(`containers.test.ts skipped: ${problem}`);

describe.skipIf(problem !== null)(`against TimescaleDB in a container (${IMAGE})`, { timeout: 120_000 }, () => {
  let container: StartedPostgreSqlContainer | undefined;
  let database: OpenedDatabase | undefined;

  beforeAll(async () => {
    const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
    container = await new PostgreSqlContainer(IMAGE).start();
    database = await openDatabase(
      { DATABASE_URL: container.getConnectionUri(), DATA_DIR: '/nonexistent' },
      { info: () => {}, warn: () => {} },
    );
  }, 300_000);
  afterAll(async () => {
    await database?.close();
    await container?.stop();
  });

  it('applies every migration and enables TimescaleDB', async () => {
    const db = database as OpenedDatabase;
    expect(db.driver).toBe('postgres');
    expect(db.timescale).toBe(true);
    const journal = JSON.parse(await readFile(path.join(migrationsFolder, 'meta/_journal.json'), 'utf8')) as {
      entries: unknown[];
    };
    const applied = rowsOf<{ n: number }>(
      await db.db.execute(sql`select count(*)::int as n from drizzle.__drizzle_migrations`),
    );
    expect(applied[0]?.n).toBe(journal.entries.length);
    const ext = rowsOf<{ extname: string }>(
      await db.db.execute(sql`select extname from pg_extension where extname = 'timescaledb'`),
    );
    expect(ext).toEqual([{ extname: 'timescaledb' }]);
  });

  it('creates a project through the services and reads it back', async () => {
    const services = createServices({ db: (database as OpenedDatabase).db });
    const created = await services.projects.create({ name: 'in a container', descr: 'timescale' });
    expect((await services.projects.list()).find((p) => p.id === created.id)).toEqual({
      id: created.id,
      name: 'in a container',
      descr: 'timescale',
      project_key: created.project_key,
      create_time: expect.any(Number),
      device_count: 0,
    });
    await expect(services.auth.appLogin(created.app)).resolves.toMatchObject({ projectId: created.id, kind: 'app' });
  });

  it('keeps attribute history in a hypertable with compression and retention policies, and reads it back', async () => {
    const db = (database as OpenedDatabase).db;
    const services = createServices({ db });
    expect(await services.historyStore.detect()).toBe('timescale');
    await services.historyStore.applyTimescalePolicies({ chunkHours: 24, compressAfterDays: 7, retentionDays: 365 });
    const jobs = rowsOf<{ proc_name: string }>(
      await db.execute(
        sql`select proc_name from timescaledb_information.jobs where hypertable_name = 'attribute_history' order by proc_name`,
      ),
    );
    expect(jobs.map((j) => j.proc_name)).toEqual(['policy_compression', 'policy_retention']);
    const project = await services.projects.create({ name: 'history in a container' });
    const device = await services.devices.create({ projectId: project.id }, { name: 'd' });
    const identity = (await services.deviceAuth.authenticate(
      project.project_key,
      (await services.devices.certificate({ projectId: project.id }, device.id)).access_token,
    ))!;
    const t = Math.floor((Date.now() - 7_200_000) / 3_600_000) * 3_600_000 + 1000;
    await services.currentValues.reportSeries(identity, [
      { ts: t, attributes: { temp: 1 } },
      { ts: t + 1000, attributes: { temp: 3 } },
    ]);
    const page = await services.history.series({ projectId: project.id }, device.id, 'temp', {
      page: 1,
      page_records: 10,
    });
    expect(page.map((p) => p.value)).toEqual([3, 1]);
    const agg = await services.history.aggregate({ projectId: project.id }, device.id, {
      identifiers: ['temp'],
      fn: 'avg',
      interval_ms: 3_600_000,
    });
    expect(agg.series.temp!.map((b) => b.value)).toEqual([2]);
    await services.ingest.stop();
  });
});
