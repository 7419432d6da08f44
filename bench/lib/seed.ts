import { randomInt } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Db } from '../../src/db/client.ts';
import { deviceGroupMembers, deviceGroups, devices, deviceTypes, type AlarmState } from '../../src/db/schema/index.ts';
import { newId, randomToken, shortCode } from '../../src/lib/ids.ts';

export interface SeedOptions {
  devices: number;
  /** Rows per INSERT; 2,000 rows × 17 columns stays under PostgreSQL's 65,535 bind parameters. */
  batch?: number;
  types?: number;
  groups?: number;
}

export interface Seeded {
  typeIds: string[];
  groupIds: string[];
  /** Every device id, oldest first (ids are time-ordered). */
  deviceIds: string[];
  memberships: number;
  ms: number;
}

const pick = <T>(items: readonly T[]): T => items[randomInt(items.length)] as T;

/**
 * Fills one project with realistic devices as fast as the database takes them: multi-row INSERTs
 * straight into the tables, bypassing the services (creating 100k devices through the API would
 * measure argon2 and HTTP, not the queries under test).
 */
export async function seedProject(db: Db, projectId: string, opts: SeedOptions): Promise<Seeded> {
  const started = performance.now();
  const batch = opts.batch ?? 2000;
  const n = opts.devices;
  // Devices were created over the last n minutes, one a minute: ids and create_time grow together.
  const firstTs = Date.now() - n * 60_000;

  const typeIds: string[] = [];
  const typeRows = Array.from({ length: opts.types ?? 5 }, (_, i) => {
    const id = newId(firstTs - 1000 + i);
    typeIds.push(id);
    return {
      id,
      projectId,
      name: `bench type ${i + 1}`,
      typeKey: randomToken(24),
      connType: i === 0 ? '3' : '1',
      createTime: firstTs,
      updateTime: firstTs,
    };
  });
  if (typeRows.length) await db.insert(deviceTypes).values(typeRows);

  const groupIds: string[] = [];
  const groupRows = Array.from({ length: opts.groups ?? 10 }, (_, i) => {
    const id = newId(firstTs - 500 + i);
    groupIds.push(id);
    return { id, projectId, parentId: null, name: `bench group ${i + 1}`, createTime: firstTs, updateTime: firstTs };
  });
  if (groupRows.length) await db.insert(deviceGroups).values(groupRows);

  const deviceIds: string[] = [];
  let memberships = 0;
  for (let start = 0; start < n; start += batch) {
    const rows: (typeof devices.$inferInsert)[] = [];
    const members: (typeof deviceGroupMembers.$inferInsert)[] = [];
    for (let i = start; i < Math.min(n, start + batch); i++) {
      const ts = firstTs + i * 60_000;
      const id = newId(ts);
      deviceIds.push(id);
      // ~60% have ever connected, ~30% are online now (online ones are active too).
      const roll = randomInt(100);
      const online = roll < 30;
      const active = roll < 60;
      const lastSeen = ts + randomInt(60_000);
      const alarmRoll = randomInt(1000);
      const alarmLevel = alarmRoll < 5 ? 3 : alarmRoll < 15 ? 2 : alarmRoll < 40 ? 1 : 0;
      const alarm: AlarmState | null = alarmLevel ? { level: alarmLevel, since: lastSeen, rule: 'bench rule' } : null;
      rows.push({
        id,
        projectId,
        // Half the devices have a type: the typed ones are spread over the types.
        typeId: typeIds.length && randomInt(2) === 0 ? pick(typeIds) : null,
        name: `device ${i + 1}`,
        descr: i % 7 === 0 ? `installed in building ${i % 31}` : '',
        deviceKey: i % 5 === 0 ? `chip-${i.toString(16).padStart(8, '0')}` : null,
        accessToken: randomToken(20),
        viewToken: randomToken(20),
        deviceCode: shortCode(10),
        tags: i % 3 === 0 ? { floor: String(i % 12), zone: pick(['north', 'south', 'east', 'west']) } : {},
        online,
        active,
        activeTs: active ? { connect: lastSeen, report: lastSeen + 1000 } : {},
        alarmLevel,
        alarm,
        createTime: ts,
        updateTime: lastSeen,
      });
      // ~20% belong to one group, a few of those to a second one.
      if (groupIds.length && randomInt(5) === 0) {
        const first = pick(groupIds);
        members.push({ groupId: first, deviceId: id, projectId });
        const second = pick(groupIds);
        if (randomInt(10) === 0 && second !== first) members.push({ groupId: second, deviceId: id, projectId });
      }
    }
    await db.insert(devices).values(rows);
    if (members.length) await db.insert(deviceGroupMembers).values(members);
    memberships += members.length;
  }
  return { typeIds, groupIds, deviceIds, memberships, ms: performance.now() - started };
}

/** Fresh statistics (and, with `vacuum`, a fresh visibility map) so the planner sees the seeded data. */
export async function analyze(db: Db, vacuum: boolean): Promise<number> {
  const started = performance.now();
  const verb = vacuum ? sql.raw('vacuum (analyze)') : sql.raw('analyze');
  for (const table of [devices, deviceGroupMembers, deviceTypes, deviceGroups]) {
    await db.execute(sql`${verb} ${table}`);
  }
  return performance.now() - started;
}
