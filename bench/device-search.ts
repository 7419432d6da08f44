/**
 * bench/device-search — `GET /api/v1/devices?search=` (docs/http-api.md §3.4) over 100,000 devices of
 * one project, with another project's devices in the same table. Times the repository's page and
 * count statements one at a time and prints their plans; it asserts nothing about time.
 *
 *   npm run bench:device-search -- [--devices 100000] [--others 100000]
 *   DATABASE_URL=postgres://... npm run bench:device-search     # PostgreSQL instead of embedded PGlite
 */
import { randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { createDevicesRepository, type DeviceFilter } from '../src/db/repositories/devices.repository.ts';
import { openDatabase } from '../src/db/open.ts';
import { createServices } from '../src/composition/services.ts';
import { captureSelects, explain } from './lib/explain.ts';
import { analyze, seedProject } from './lib/seed.ts';
import { benchArgs, intArg as benchInt } from './lib/args.ts';

const args = benchArgs('device-search', {
  devices: { type: 'string', default: '100000' },
  others: { type: 'string', default: '100000' },
});
const N = benchInt('device-search', 'devices', args.devices, 1, 2_000_000);
const OTHERS = benchInt('device-search', 'others', args.others, 0, 2_000_000);
const PAGE_RECORDS = 20;

const watchdog = setTimeout(() => {
  console.error('bench/device-search: gave up after 20 minutes');
  process.exit(1);
}, 20 * 60_000);
watchdog.unref();

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'bench-device-search-'));
const database = await openDatabase(
  { DATA_DIR: dataDir, DATABASE_URL: process.env.DATABASE_URL },
  pino({ level: 'warn' }),
).catch((err: unknown) => {
  rmSync(dataDir, { recursive: true, force: true });
  throw err;
});
const services = createServices({ db: database.db });
const projectIds: string[] = [];

/** Median of `runs` calls, one at a time, after two untimed ones. */
async function medianMs(call: () => Promise<unknown>, runs = 15): Promise<number> {
  await call();
  await call();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    await call();
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

try {
  console.log(
    `bench/device-search: driver=${database.driver} devices=${N} other-project devices=${OTHERS} node=${process.version}`,
  );
  const stamp = `${new Date().toISOString()} ${randomInt(1e9)}`;
  const project = await services.projects.create({ name: `bench-device-search ${stamp}` });
  projectIds.push(project.id);
  const seeded = await seedProject(database.db, project.id, { devices: N });
  if (OTHERS) {
    const other = await services.projects.create({ name: `bench-device-search other ${stamp}` });
    projectIds.push(other.id);
    await seedProject(database.db, other.id, { devices: OTHERS });
  }
  console.log(
    `seeded in ${(seeded.ms / 1000).toFixed(1)} s (+ the other project); ANALYZE ${((await analyze(database.db, false)) / 1000).toFixed(1)} s`,
  );

  // Seeded names are "device <n>", every fifth device has the key "chip-<n in hex, 8 digits>".
  const scope = { projectId: project.id };
  const repo = createDevicesRepository(database.db);
  const cases: { name: string; filter: DeviceFilter }[] = [
    { name: 'no search (baseline)', filter: {} },
    { name: 'search "device" (every device matches)', filter: { search: 'device' } },
    { name: 'search "DEVICE 12" (~1.1% match)', filter: { search: 'DEVICE 12' } },
    { name: `search "device ${N}" (one or a few match)`, filter: { search: `device ${N}` } },
    { name: 'search "no such thing" (none match)', filter: { search: 'no such thing' } },
    { name: 'search "chip-0000ab" (key prefix, a few match)', filter: { search: 'chip-0000ab' } },
    { name: 'search "100%" (wildcard taken literally, none match)', filter: { search: '100%' } },
  ];
  console.log(`\nmedian of 15 calls (page = ${PAGE_RECORDS} newest rows; count = the total the service caches):`);
  for (const c of cases) {
    const rows = await repo.page(scope, c.filter, PAGE_RECORDS, 0);
    const total = await repo.total(scope, c.filter);
    const pageMs = await medianMs(() => repo.page(scope, c.filter, PAGE_RECORDS, 0));
    const countMs = await medianMs(() => repo.total(scope, c.filter));
    console.log(
      `  ${c.name.padEnd(52)} page ${pageMs.toFixed(2).padStart(7)} ms  count ${countMs.toFixed(2).padStart(7)} ms  (rows ${rows.length}, total ${total})`,
    );
  }

  console.log('\nEXPLAIN (ANALYZE, BUFFERS) of the search statements (rare match, the worst case for the page):');
  const rare: DeviceFilter = { search: `device ${N}` };
  const captured = await captureSelects(database.db, async (db) => {
    const r = createDevicesRepository(db);
    await r.page(scope, rare, PAGE_RECORDS, 0);
    await r.total(scope, rare);
  });
  for (const query of captured) {
    const plan = await explain(database.db, query);
    console.log(`\nexecution ${plan.executionMs.toFixed(3)} ms, planning ${plan.planningMs.toFixed(3)} ms`);
    for (const line of plan.lines) console.log(`  ${line}`);
  }
} finally {
  if (database.driver === 'postgres') {
    for (const id of projectIds) await services.projects.delete(id);
    await analyze(database.db, true);
  }
  await database.close();
  rmSync(dataDir, { recursive: true, force: true });
}
