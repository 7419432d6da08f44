import { rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { buildConsole, isFresh } from '../console/build.ts';
import { openPglite, openPostgres } from '../src/db/client.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    pgliteDump: string;
  }
}

/**
 * Migrates once for the whole run: a real PostgreSQL when TEST_DATABASE_URL is set, and always an
 * embedded PGlite whose files are dumped so every test file starts from the migrated snapshot.
 */
export default async function setup(project: TestProject) {
  // The web console once for the run (README "Web console"), so parallel test files find it built.
  if (!isFresh()) await buildConsole();
  const url = process.env.TEST_DATABASE_URL;
  if (url) {
    const pg = await openPostgres(url, { max: 1 });
    await pg.migrate();
    await pg.close();
  }
  const lite = await openPglite();
  await lite.migrate();
  const dump = await lite.client.dumpDataDir('none');
  await lite.close();
  const file = path.join(os.tmpdir(), `iot-cloud-test-${process.pid}.tar`);
  // The snapshot (~40 MB) goes when the run ends: in the teardown below, or when the process exits
  // otherwise (an interrupted run); only a SIGKILL leaves it behind.
  const remove = () => rmSync(file, { force: true });
  process.once('exit', remove);
  await writeFile(file, Buffer.from(await dump.arrayBuffer()));
  project.provide('pgliteDump', file);
  return () => {
    remove();
    process.off('exit', remove);
  };
}
