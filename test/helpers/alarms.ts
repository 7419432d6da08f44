import { afterAll, beforeAll } from 'vitest';
import {
  createAlarmsRepository,
  type AlarmRuleRow,
  type AlarmsRepository,
} from '../../src/db/repositories/alarms.repository.ts';
import { newId } from '../../src/lib/ids.ts';
import { createTestApp, type TestContext } from './app.ts';

/**
 * A test file's app on the test's `clock` (with `settings`), and its alarms repository: started in beforeAll,
 * closed in afterAll, so read `ctx` and `repo` inside hooks and tests only.
 */
export function alarmsTestApp(
  clock: () => number,
  settings?: NonNullable<Parameters<typeof createTestApp>[1]>['settings'],
): { readonly ctx: TestContext; readonly repo: AlarmsRepository } {
  let ctx: TestContext | undefined;
  let repo: AlarmsRepository | undefined;
  beforeAll(async () => {
    ctx = await createTestApp({}, { clock, ...(settings ? { settings } : {}) });
    repo = createAlarmsRepository(ctx.database.db);
  });
  afterAll(async () => {
    await ctx?.close();
  });
  return {
    get ctx() {
      if (!ctx) throw new Error('the test app is not started (read outside a hook or test)');
      return ctx;
    },
    get repo() {
      if (!repo) throw new Error('the test app is not started (read outside a hook or test)');
      return repo;
    },
  };
}

/** An enabled level-1 alarm rule as stored (no message, no suppression), made and changed at `now`. */
export function alarmRuleRow(
  now: number,
  rule: Pick<AlarmRuleRow, 'projectId' | 'deviceTypeId' | 'name' | 'condition'> & { deviceIds?: string[] },
): AlarmRuleRow {
  return {
    id: newId(now),
    enabled: true,
    level: 1,
    deviceIds: [],
    groupIds: [],
    message: '',
    suppressSeconds: 0,
    createTime: now,
    updateTime: now,
    ...rule,
  };
}
