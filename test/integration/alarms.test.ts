import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeviceIdentity } from '../../src/domain/devices/device-identity.ts';
import { createServices } from '../../src/composition/services.ts';
import {
  createProject,
  createTestApp,
  expectFailure,
  expectOk,
  type ProjectFixture,
  type TestContext,
} from '../helpers/app.ts';
import { addDevice, directIdentity } from '../helpers/factories.ts';
import { openPrivateTestDatabase } from '../helpers/db.ts';

let now = 1_700_000_000_000;
const clock = () => now;
let ctx: TestContext;

beforeAll(async () => {
  // A database of its own: a restart below sets every device of the database offline.
  ctx = await createTestApp(
    {},
    { clock, database: await openPrivateTestDatabase(), settings: { alarmNotify: { allowNetworks: '127.0.0.0/8' } } },
  );
});
afterAll(async () => {
  await ctx?.services.alarms.stop();
  await ctx?.close();
});

/** Moves the clock and runs what became due (timers, their evaluations). */
async function advance(ms: number) {
  now += ms;
  await ctx.services.alarms.scheduler.runDue();
  await ctx.services.alarms.idle();
}

interface Fixture extends ProjectFixture {
  typeId: string;
}

async function fixture(name = 'alarms'): Promise<Fixture> {
  const p = await createProject(ctx, name);
  const type = expectOk(await p.api.post('/api/v1/device_type', { name: 'Sensor' }));
  return { ...p, typeId: type.id };
}

async function device(f: Fixture, name = 'dev-1', type = f.typeId) {
  const { id } = await addDevice(f.api, { name, type });
  return { id, identity: directIdentity(f.project.id, { id, name, type }) };
}

async function report(identity: DeviceIdentity, attributes: Record<string, unknown>) {
  await ctx.services.currentValues.report(identity, attributes);
  await ctx.services.alarms.idle();
}

async function rule(f: Fixture, body: Record<string, unknown>) {
  return expectOk(
    await f.api.post('/api/v1/alarm_rule', { name: 'rule', device_type_id: f.typeId, level: 1, ...body }),
  );
}

async function logs(f: Fixture, deviceId?: string) {
  const res = expectOk(await f.api.get(deviceId ? `/api/v1/device/${deviceId}/alarm_logs` : '/api/v1/alarm_logs'));
  return res.items as Array<Record<string, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any -- JSON of the API
}

describe('alarm rules API', () => {
  it('creates, reads, lists, updates and deletes rules', async () => {
    const f = await fixture();
    const r = await rule(f, {
      name: 'hot',
      level: 2,
      condition: { kind: 'attribute', identifier: 'temp', op: '>', value: 30, for_seconds: 60 },
      message: 'hot {{value}}',
    });
    expect(r).toMatchObject({
      name: 'hot',
      level: 2,
      enabled: true,
      device_ids: [],
      group_ids: [],
      suppress_seconds: 0,
      condition: { kind: 'attribute', identifier: 'temp', op: '>', value: 30, for_seconds: 60 },
    });
    expect(expectOk(await f.api.get(`/api/v1/alarm_rule/${r.id}`))).toEqual(r);
    const updated = expectOk(await f.api.put(`/api/v1/alarm_rule/${r.id}`, { level: 3, enabled: false }));
    expect(updated).toMatchObject({ level: 3, enabled: false, name: 'hot' });
    const list = expectOk(await f.api.get(`/api/v1/alarm_rules?type=${f.typeId}`));
    expect(list).toMatchObject({ total: 1, page_total: 1, items: [{ id: r.id, level: 3 }] });
    expectOk(await f.api.delete(`/api/v1/alarm_rule/${r.id}`));
    expectFailure(await f.api.get(`/api/v1/alarm_rule/${r.id}`), 404);
  });

  it('refuses conditions that cannot be evaluated, with the field named', async () => {
    const f = await fixture();
    const bad = [
      { kind: 'attribute', identifier: 'temp', op: '>', value: 'hot' },
      { kind: 'attribute', identifier: 'temp', op: 'between', min: 5 },
      { kind: 'attribute', identifier: 'temp', op: 'between', min: 5, max: 1 },
      { kind: 'attribute', identifier: 'temp', op: '~' },
      { kind: 'attribute', identifier: '1x', op: '==', value: 1 },
      { kind: 'attribute', identifier: 'temp', op: 'change', for_seconds: 5 },
      { kind: 'offline' },
      { kind: 'silence', seconds: 0 },
      { kind: 'weather' },
    ];
    for (const condition of bad) {
      const body = expectFailure(
        await f.api.post('/api/v1/alarm_rule', { name: 'x', device_type_id: f.typeId, level: 1, condition }),
        400,
      );
      expect(body.errors?.length ?? 0, JSON.stringify(condition)).toBeGreaterThan(0);
    }
    expectFailure(
      await f.api.post('/api/v1/alarm_rule', {
        name: 'x',
        device_type_id: f.typeId,
        level: 4,
        condition: { kind: 'offline', for_seconds: 1 },
      }),
      400,
    );
    expectFailure(
      await f.api.post('/api/v1/alarm_rule', {
        name: 'x',
        device_type_id: 'nope',
        level: 1,
        condition: { kind: 'offline', for_seconds: 1 },
      }),
      404,
    );
    expectFailure(
      await f.api.post('/api/v1/alarm_rule', {
        name: 'x',
        device_type_id: f.typeId,
        level: 1,
        device_ids: ['nope'],
        condition: { kind: 'offline', for_seconds: 1 },
      }),
      404,
    );
  });
});

describe('attribute conditions', () => {
  it('triggers, sets the device state and statistics, and recovers', async () => {
    const f = await fixture();
    const d = await device(f, 'boiler');
    const r = await rule(f, {
      name: 'hot',
      level: 2,
      condition: { kind: 'attribute', identifier: 'temp', op: '>', value: 30 },
      message: '{{device.name}} temperature {{value}} > {{threshold}}',
    });
    await report(d.identity, { temp: 25 });
    expect(await logs(f)).toEqual([]);

    await report(d.identity, { temp: 31.5 });
    const [trig] = await logs(f);
    expect(trig).toMatchObject({
      device_id: d.id,
      alarm_status: 1,
      alarm_level: 2,
      create_time: now,
      notify_logs: [],
      device: { id: d.id, name: 'boiler' },
      rule_id: r.id,
      active: true,
      end_time: null,
      ack: null,
      clear: null,
      alarm_info: {
        rule_id: r.id,
        rule_name: 'hot',
        kind: 'attribute',
        identifier: 'temp',
        op: '>',
        value: 31.5,
        threshold: 30,
        message: 'boiler temperature 31.5 > 30',
      },
    });
    expect(expectOk(await f.api.get(`/api/v1/device/${d.id}`)).alarm).toEqual({ level: 2, since: now, rule: r.id });
    expect(expectOk(await f.api.get('/api/v1/devices_alarm_stat'))).toEqual({
      device_total: 1,
      alarm_1_total: 0,
      alarm_2_total: 1,
      alarm_3_total: 0,
      normal_total: 0,
    });
    expect(expectOk(await f.api.get('/api/v1/devices_stat')).alarm_device_total).toBe(1);

    // Still hot: no second entry.
    await report(d.identity, { temp: 40 });
    expect(await logs(f)).toHaveLength(1);

    now += 1000;
    await report(d.identity, { temp: 20 });
    const [rec, trigAgain] = await logs(f, d.id);
    expect(rec).toMatchObject({
      alarm_status: 0,
      alarm_level: 2,
      trigger_id: trig!.id,
      alarm_info: { reason: 'recovered', value: 20 },
    });
    expect(trigAgain).toMatchObject({ id: trig!.id, active: false, end_time: now });
    expect(expectOk(await f.api.get(`/api/v1/device/${d.id}`)).alarm).toEqual({});
    expect(expectOk(await f.api.get('/api/v1/devices_alarm_stat'))).toMatchObject({
      alarm_2_total: 0,
      normal_total: 1,
    });
    expect(expectOk(await f.api.get('/api/v1/devices_stat')).alarm_device_total).toBe(0);
  });

  it('evaluates every operator', async () => {
    const f = await fixture();
    const cases: Array<[Record<string, unknown>, unknown[], boolean[]]> = [
      [{ op: '>=', value: 10 }, [9, 10, 11], [false, true, true]],
      [{ op: '<', value: 0 }, [1, -1, 0], [false, true, false]],
      [{ op: '<=', value: 0 }, [1, 0], [false, true]],
      [{ op: 'between', min: 10, max: 20 }, [5, 10, 20, 21], [false, true, true, false]],
      [{ op: 'outside', min: 10, max: 20 }, [15, 9, 21, 20], [false, true, true, false]],
      [{ op: '==', value: true }, [false, true, 'true'], [false, true, false]],
      [{ op: '!=', value: 'ok' }, ['ok', 'fault', 'ok'], [false, true, false]],
      [{ op: '==', value: 'fault' }, ['ok', 'fault'], [false, true]],
      [{ op: 'change' }, ['a', 'a', 'b', 'b', 'c'], [false, false, true, false, true]],
    ];
    for (const [i, [cond, values, expected]] of cases.entries()) {
      const d = await device(f, `dev-${i}`);
      await rule(f, {
        name: `op ${cond.op}`,
        device_ids: [d.id],
        condition: { kind: 'attribute', identifier: 'v', ...cond },
      });
      const seen: boolean[] = [];
      for (const v of values) {
        await report(d.identity, { v });
        seen.push(expectOk(await f.api.get(`/api/v1/device/${d.id}`)).alarm.level === 1);
      }
      expect(seen, JSON.stringify(cond)).toEqual(expected);
    }
  });

  it('waits for the persistence window (for_seconds) on the clock', async () => {
    const f = await fixture();
    const d = await device(f);
    await rule(f, { condition: { kind: 'attribute', identifier: 'temp', op: '>', value: 30, for_seconds: 60 } });
    await report(d.identity, { temp: 31 });
    await advance(59_000);
    expect(await logs(f)).toEqual([]);
    await report(d.identity, { temp: 35 });
    await advance(1_000);
    const [trig] = await logs(f);
    expect(trig).toMatchObject({ alarm_status: 1, alarm_info: { value: 35, since: now - 60_000 } });

    // A dip below the threshold restarts the window.
    const d2 = await device(f, 'dev-2');
    await report(d2.identity, { temp: 31 });
    await advance(30_000);
    await report(d2.identity, { temp: 29 });
    await advance(30_000);
    await report(d2.identity, { temp: 31 });
    await advance(59_000);
    expect(await logs(f, d2.id)).toEqual([]);
    await advance(1_000);
    expect(await logs(f, d2.id)).toHaveLength(1);
  });

  it('narrows a rule to devices and groups', async () => {
    const f = await fixture();
    const group = expectOk(await f.api.post('/api/v1/device_group', { name: 'hall' }));
    const inGroup = await device(f, 'in-group');
    expectOk(await f.api.put(`/api/v1/device/${inGroup.id}/groups`, { groups: [group.id] }));
    const listed = await device(f, 'listed');
    const other = await device(f, 'other');
    await rule(f, {
      device_ids: [listed.id],
      group_ids: [group.id],
      condition: { kind: 'attribute', identifier: 'on', op: '==', value: true },
    });
    for (const d of [inGroup, listed, other]) await report(d.identity, { on: true });
    expect((await logs(f)).map((l) => l.device.name).sort()).toEqual(['in-group', 'listed']);
    // Joining the group counts at the next report (the evaluator's cache of the device is dropped).
    expectOk(await f.api.put(`/api/v1/device/${other.id}/groups`, { groups: [group.id] }));
    await report(other.identity, { on: true });
    expect((await logs(f)).map((l) => l.device.name).sort()).toEqual(['in-group', 'listed', 'other']);
  });
});

describe('connection and silence conditions', () => {
  it('offline for more than N seconds triggers; connecting recovers', async () => {
    const f = await fixture();
    const d = await device(f);
    await rule(f, { level: 3, condition: { kind: 'offline', for_seconds: 120 } });
    ctx.services.presence.connected(d.identity, 'mqtt');
    ctx.services.presence.disconnected(d.identity, 'mqtt', 'test');
    await ctx.services.alarms.idle();
    await advance(60_000);
    ctx.services.presence.connected(d.identity, 'mqtt'); // back before the limit: nothing
    await ctx.services.alarms.idle();
    ctx.services.presence.disconnected(d.identity, 'mqtt', 'test');
    await ctx.services.alarms.idle();
    await advance(119_000);
    expect(await logs(f)).toEqual([]);
    await advance(1_000);
    expect(await logs(f)).toMatchObject([
      { alarm_status: 1, alarm_level: 3, alarm_info: { kind: 'offline', threshold: 120 } },
    ]);
    expect(expectOk(await f.api.get('/api/v1/devices_alarm_stat'))).toMatchObject({ alarm_3_total: 1 });
    ctx.services.presence.connected(d.identity, 'mqtt');
    await ctx.services.alarms.idle();
    expect((await logs(f))[0]).toMatchObject({ alarm_status: 0, alarm_info: { reason: 'recovered' } });
  });

  it('an offline rule created later watches devices already offline', async () => {
    const f = await fixture();
    const d = await device(f);
    ctx.services.presence.connected(d.identity, 'mqtt');
    ctx.services.presence.disconnected(d.identity, 'mqtt', 'test');
    await ctx.services.presence.flush();
    await advance(10_000);
    await rule(f, { condition: { kind: 'offline', for_seconds: 60 } });
    await advance(49_000);
    expect(await logs(f)).toEqual([]);
    await advance(1_000);
    expect(await logs(f)).toHaveLength(1);
  });

  it('silence: no report for N seconds triggers; the next report recovers', async () => {
    const f = await fixture();
    const d = await device(f);
    await rule(f, {
      condition: { kind: 'silence', seconds: 300 },
      message: '{{device.name}} silent for {{seconds}} s',
    });
    await report(d.identity, { temp: 1 });
    await advance(200_000);
    await report(d.identity, { temp: 2 });
    await advance(299_000);
    expect(await logs(f)).toEqual([]);
    await advance(1_000);
    expect(await logs(f)).toMatchObject([
      { alarm_status: 1, alarm_info: { kind: 'silence', message: 'dev-1 silent for 300 s' } },
    ]);
    await advance(600_000); // still silent: one alarm only
    expect(await logs(f)).toHaveLength(1);
    await report(d.identity, { temp: 3 });
    expect((await logs(f))[0]).toMatchObject({ alarm_status: 0 });
    await advance(300_000);
    expect(await logs(f)).toHaveLength(3);
  });
});

describe('lifecycle', () => {
  it('suppresses repeats within suppress_seconds, and triggers at its end if the condition still holds', async () => {
    const f = await fixture();
    const d = await device(f);
    await rule(f, {
      suppress_seconds: 600,
      condition: { kind: 'attribute', identifier: 'door', op: '==', value: 'open' },
    });
    await report(d.identity, { door: 'open' });
    await report(d.identity, { door: 'closed' });
    await advance(10_000);
    await report(d.identity, { door: 'open' }); // within the window: held back
    await report(d.identity, { door: 'closed' });
    await report(d.identity, { door: 'open' });
    expect((await logs(f)).map((l) => l.alarm_status)).toEqual([0, 1]);
    await advance(590_000); // the window ends while the door is still open
    expect((await logs(f)).map((l) => l.alarm_status)).toEqual([1, 0, 1]);
  });

  it('acknowledges and clears with a note; a cleared alarm re-arms only after the condition stops holding', async () => {
    const f = await fixture();
    const d = await device(f);
    await rule(f, { condition: { kind: 'attribute', identifier: 'temp', op: '>', value: 30 } });
    await report(d.identity, { temp: 31 });
    const [trig] = await logs(f);
    const acked = expectOk(await f.admin.post(`/api/v1/alarm_log/${trig!.id}/ack`, { note: 'on it' }));
    expect(acked).toMatchObject({
      active: true,
      ack: { note: 'on it', time: now, by: expect.stringMatching(/^admin:/) },
    });
    expectFailure(await f.api.post(`/api/v1/alarm_log/${trig!.id}/ack`, { note: 'again' }), 422);

    const cleared = expectOk(await f.api.post(`/api/v1/alarm_log/${trig!.id}/clear`, { note: 'sensor swapped' }));
    expect(cleared).toMatchObject({
      alarm_status: 0,
      trigger_id: trig!.id,
      alarm_info: { reason: 'cleared', note: 'sensor swapped' },
      clear: { note: 'sensor swapped', by: expect.stringMatching(/^app:/) },
    });
    expect(expectOk(await f.api.get(`/api/v1/device/${d.id}`)).alarm).toEqual({});
    expectFailure(await f.api.post(`/api/v1/alarm_log/${trig!.id}/clear`, {}), 422);
    expectFailure(await f.api.post(`/api/v1/alarm_log/${cleared.id}/ack`, {}), 422);

    await report(d.identity, { temp: 35 }); // still holds: latched
    expect(await logs(f)).toHaveLength(2);
    await report(d.identity, { temp: 20 });
    await report(d.identity, { temp: 33 });
    expect((await logs(f)).map((l) => l.alarm_status)).toEqual([1, 0, 1]);
  });

  it('a device counts at its highest active level', async () => {
    const f = await fixture();
    const d = await device(f);
    const low = await rule(f, { level: 1, condition: { kind: 'attribute', identifier: 'temp', op: '>', value: 30 } });
    const high = await rule(f, { level: 3, condition: { kind: 'attribute', identifier: 'temp', op: '>', value: 50 } });
    await report(d.identity, { temp: 40 });
    expect(expectOk(await f.api.get(`/api/v1/device/${d.id}`)).alarm).toMatchObject({ level: 1, rule: low.id });
    await report(d.identity, { temp: 60 });
    expect(expectOk(await f.api.get(`/api/v1/device/${d.id}`)).alarm).toMatchObject({ level: 3, rule: high.id });
    expect(expectOk(await f.api.get('/api/v1/devices_alarm_stat'))).toMatchObject({
      alarm_1_total: 0,
      alarm_3_total: 1,
    });
    await report(d.identity, { temp: 40 });
    expect(expectOk(await f.api.get(`/api/v1/device/${d.id}`)).alarm).toMatchObject({ level: 1, rule: low.id });
    expect(expectOk(await f.api.get('/api/v1/devices_alarm_stat'))).toMatchObject({
      alarm_1_total: 1,
      alarm_3_total: 0,
    });
  });

  it('deleting or disabling a rule ends its active alarms', async () => {
    const f = await fixture();
    const d = await device(f);
    const r1 = await rule(f, { condition: { kind: 'attribute', identifier: 'a', op: '==', value: 1 } });
    const r2 = await rule(f, { condition: { kind: 'attribute', identifier: 'b', op: '==', value: 1 } });
    await report(d.identity, { a: 1, b: 1 });
    expectOk(await f.api.delete(`/api/v1/alarm_rule/${r1.id}`));
    expectOk(await f.api.put(`/api/v1/alarm_rule/${r2.id}`, { enabled: false }));
    await ctx.services.alarms.idle();
    const reasons = (await logs(f))
      .filter((l) => l.alarm_status === 0)
      .map((l) => l.alarm_info.reason)
      .sort();
    expect(reasons).toEqual(['rule_deleted', 'rule_disabled']);
    expect(expectOk(await f.api.get(`/api/v1/device/${d.id}`)).alarm).toEqual({});
    await report(d.identity, { a: 1, b: 1 });
    expect(await logs(f)).toHaveLength(4);
  });

  it('pages the log newest first and filters it', async () => {
    const f = await fixture();
    const d = await device(f);
    await rule(f, { condition: { kind: 'attribute', identifier: 'x', op: '>', value: 0 } });
    for (let i = 0; i < 5; i++) {
      now += 1000;
      await report(d.identity, { x: 1 });
      now += 1000;
      await report(d.identity, { x: 0 });
    }
    const page = expectOk(await f.api.get('/api/v1/alarm_logs?page=2&page_records=4'));
    expect(page).toMatchObject({ total: 10, page_total: 3 });
    expect(page.items).toHaveLength(4);
    const all = await logs(f);
    const times = all.map((l) => l.create_time);
    expect(times).toEqual([...times].sort((a, b) => b - a));
    const triggers = expectOk(await f.api.get(`/api/v1/alarm_logs?alarm_status=1&device=${d.id}`));
    expect(triggers.total).toBe(5);
    expectFailure(await f.api.get('/api/v1/alarm_logs?device=nope'), 404);
    expectFailure(await f.api.get('/api/v1/device/nope/alarm_logs'), 404);
  });
});

describe('isolation', () => {
  it("another project's rules, logs, targets, types, devices and groups are not found", async () => {
    const a = await fixture('A');
    const b = await fixture('B');
    const d = await device(a);
    const r = await rule(a, { condition: { kind: 'attribute', identifier: 't', op: '>', value: 1 } });
    const t = expectOk(
      await a.api.post('/api/v1/notification_target', { name: 'hook', url: 'http://127.0.0.1:9/hook' }),
    );
    await report(d.identity, { t: 2 });
    const [log] = await logs(a);
    expectFailure(await b.api.get(`/api/v1/alarm_rule/${r.id}`), 404);
    expectFailure(await b.api.put(`/api/v1/alarm_rule/${r.id}`, { level: 2 }), 404);
    expectFailure(await b.api.delete(`/api/v1/alarm_rule/${r.id}`), 404);
    expectFailure(await b.api.get(`/api/v1/alarm_log/${log!.id}`), 404);
    expectFailure(await b.api.post(`/api/v1/alarm_log/${log!.id}/ack`, {}), 404);
    expectFailure(await b.api.post(`/api/v1/alarm_log/${log!.id}/clear`, {}), 404);
    expectFailure(await b.api.get(`/api/v1/device/${d.id}/alarm_logs`), 404);
    expectFailure(await b.api.get(`/api/v1/notification_target/${t.id}`), 404);
    expectFailure(await b.api.delete(`/api/v1/notification_target/${t.id}`), 404);
    expectFailure(
      await b.api.post('/api/v1/alarm_rule', {
        name: 'x',
        device_type_id: a.typeId,
        level: 1,
        condition: { kind: 'offline', for_seconds: 1 },
      }),
      404,
    );
    expectFailure(
      await b.api.post('/api/v1/alarm_rule', {
        name: 'x',
        device_type_id: b.typeId,
        level: 1,
        device_ids: [d.id],
        condition: { kind: 'offline', for_seconds: 1 },
      }),
      404,
    );
    expect(await logs(b)).toEqual([]);
    expect(expectOk(await b.api.get('/api/v1/alarm_rules')).total).toBe(0);
    expect(expectOk(await b.api.get('/api/v1/notification_targets')).items).toEqual([]);
    expect(expectOk(await a.api.get('/api/v1/alarm_rules')).total).toBe(1);
  });
});

describe('restart', () => {
  it('rebuilds active alarms from the database: no duplicate trigger, recovery still recorded', async () => {
    const f = await fixture();
    const d = await device(f);
    await rule(f, { condition: { kind: 'attribute', identifier: 'temp', op: '>', value: 30 } });
    const off = await rule(f, { condition: { kind: 'offline', for_seconds: 60 } });
    await report(d.identity, { temp: 31 });
    ctx.services.presence.connected(d.identity, 'mqtt');
    await ctx.services.presence.flush();
    expect(await logs(f)).toHaveLength(1);

    // A second node of services over the same database, as after a restart (the device's session is gone).
    const again = createServices({ db: ctx.database.db, clock });
    try {
      await again.presence.resetOnline();
      await again.alarms.start();
      again.alarms.scheduler.stop(); // driven by hand below
      await again.currentValues.report(d.identity, { temp: 32 });
      await again.alarms.idle();
      expect(await logs(f)).toHaveLength(1);
      // The device was online when the server stopped: offline counts from the start.
      now += 60_000;
      await again.alarms.scheduler.runDue();
      await again.alarms.idle();
      const entries = await logs(f);
      expect(entries.map((l) => [l.rule_id, l.alarm_status])).toEqual([
        [off.id, 1],
        [expect.any(String), 1],
      ]);
      await again.currentValues.report(d.identity, { temp: 20 });
      await again.alarms.idle();
      expect((await logs(f))[0]).toMatchObject({ alarm_status: 0, trigger_id: entries[1]!.id });
    } finally {
      await again.alarms.stop();
      await again.ingest.stop();
      await again.currentCache.stop();
    }
  });
});
