import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { createNotifyJobsRepository } from '../../src/db/repositories/notify-jobs.repository.ts';
import type { AlarmCondition } from '../../src/db/schema/index.ts';
import { createAlarmEngine } from '../../src/domain/alarms/alarm-engine.ts';
import { createScheduler } from '../../src/domain/alarms/scheduler.ts';
import { createEventBus } from '../../src/domain/events/event-bus.ts';
import { newId } from '../../src/lib/ids.ts';
import { alarmRuleRow, alarmsTestApp } from '../helpers/alarms.ts';
import { createProject, expectOk, type ProjectFixture } from '../helpers/app.ts';
import { addDevice, addDeviceType, directIdentity } from '../helpers/factories.ts';

/**
 * Cluster mode's ownership of alarm timers (docs/cluster.md §4), one evaluator against the database: a
 * device's offline and silence timers run on the node named by its session_node (orphans: no node, or a
 * dead one, on the holder of the orphans' lease), and each timer checks before it fires that the device
 * is still this node's.
 */
let now = Date.now();
const clock = () => now;
// Webhooks to a closed local port: their deliveries fail and wait for a retry.
const app = alarmsTestApp(clock, { alarmNotify: { allowNetworks: '127.0.0.0/8', backoffMs: 60_000 } });
const quiet = { error: () => {}, warn: () => {}, info: () => {} };
const repoJobs = (projectId: string) => createNotifyJobsRepository(app.ctx.database.db).projectJobs(projectId);

/** This node is `a`; `b` is alive, `dead` is not; `orphans` says whether `a` holds the orphans' lease. */
function node(orphans = false) {
  const alive = new Set(['a', 'b']);
  /** Devices the session directory finds connected on some node. */
  const connected = new Set<string>();
  const ownership = {
    orphans,
    connected,
    owns: (n: string | null) => n === 'a' || ((n === null || !alive.has(n)) && ownership.orphans),
    connectedAnywhere: async (deviceId: string) => connected.has(deviceId),
  };
  const bus = createEventBus();
  const scheduler = createScheduler({ clock });
  const entries: Array<{ deviceId: string; status: number; kind: unknown }> = [];
  const engine = createAlarmEngine({
    repo: app.repo,
    bus,
    scheduler,
    clock,
    logger: quiet,
    ownership,
    onEntry: (_p, { log }) =>
      entries.push({ deviceId: log.deviceId, status: log.alarmStatus, kind: log.alarmInfo.kind }),
  });
  engine.attach();
  return { ownership, bus, scheduler, entries, engine };
}

async function setup(condition: AlarmCondition, devices: Array<{ name: string; session: string | null }>) {
  const p: ProjectFixture = await createProject(app.ctx);
  const type = await addDeviceType(p.api, { name: 'Pump' });
  const ids: string[] = [];
  for (const d of devices) {
    const made = await addDevice(p.api, { name: d.name, type: type.id });
    // Devices that have been connected: offline now, their session last held by `session`.
    await app.ctx.database.db.execute(
      sql`update devices set active = true, online = false, session_node = ${d.session},
          active_ts = ${JSON.stringify({ connect: now - 60_000, disconnect: now - 1_000, attributes: now - 1_000 })}::jsonb
          where id = ${made.id}`,
    );
    ids.push(made.id);
  }
  const rule = alarmRuleRow(now, {
    projectId: p.project.id,
    deviceTypeId: type.id,
    name: condition.kind,
    condition,
    deviceIds: ids,
  });
  await app.repo.insertRule(rule);
  return { p, rule, ids };
}

const setSession = (id: string, n: string | null, online = false) =>
  app.ctx.database.db.execute(sql`update devices set session_node = ${n}, online = ${online} where id = ${id}`);

/** A device of node `a` under a rule temp > 30, whose reports and presence this node's evaluator sees. */
async function hotDevice(name: string) {
  const { p, rule, ids } = await setup({ kind: 'attribute', identifier: 'temp', op: '>', value: 30 }, [
    { name, session: 'a' },
  ]);
  const [deviceId] = ids as [string];
  const n = node();
  const projectId = p.project.id;
  let ts = now;
  return {
    n,
    projectId,
    rule,
    deviceId,
    async report(temp: number) {
      n.bus.emit('device.attributes', { projectId, deviceId, attributes: { temp }, attrType: 'report', ts: ++ts });
      await n.engine.idle();
    },
    async presence(online: boolean) {
      if (online) n.bus.emit('device.online', { projectId, deviceId, transport: 'mqtt', ts: now });
      else n.bus.emit('device.offline', { projectId, deviceId, transport: 'mqtt', ts: now, reason: 'closed' });
      await n.engine.idle();
    },
    /** The ids of its active alarms. */
    active: async () => (await app.repo.activeTriggers(projectId, rule.id, deviceId)).map((r) => r.log.id),
    /** Another node ends its alarm `logId` (it recovered there). */
    endElsewhere: (logId: string) =>
      app.repo.end(logId, {
        id: newId(now),
        projectId,
        deviceId,
        ruleId: rule.id,
        alarmLevel: 1,
        alarmInfo: { reason: 'recovered' },
        createTime: now,
      }),
  };
}

describe('alarm timers in cluster mode', () => {
  it("arms only this node's devices; orphans (no node, a dead node) once it holds the orphans' lease", async () => {
    const { p, rule, ids } = await setup({ kind: 'offline', for_seconds: 5 }, [
      { name: 'mine', session: 'a' },
      { name: 'on-b', session: 'b' },
      { name: 'never', session: null },
      { name: 'on-dead', session: 'dead' },
    ]);
    const [mine, onB, never, onDead] = ids as [string, string, string, string];
    const n = node(false);
    await n.engine.ruleChanged(p.project.id, rule.id, rule);
    // One timer: the others' devices are not even watched here.
    expect(n.scheduler.size).toBe(1);
    now += 5_000;
    await n.scheduler.runDue();
    expect(n.entries.map((e) => e.deviceId)).toEqual([mine]);
    // The orphans' lease taken: the devices of no node and of a dead node are this node's now.
    n.ownership.orphans = true;
    await n.engine.adopt();
    now += 5_000;
    await n.scheduler.runDue();
    // (adopt() arms every rule of the database: other tests' devices are left out here.)
    const ours = n.entries.filter((e) => ids.includes(e.deviceId));
    expect(ours.map((e) => e.deviceId).sort()).toEqual([mine, never, onDead].sort());
    expect(n.entries.some((e) => e.deviceId === onB)).toBe(false);
  });

  it('a timer whose device connected to another node meanwhile does not fire (fenced), and is dropped', async () => {
    const { p, rule, ids } = await setup({ kind: 'offline', for_seconds: 5 }, [
      { name: 'moves', session: 'a' },
      { name: 'stays', session: 'a' },
    ]);
    const [moves, stays] = ids as [string, string];
    const n = node();
    await n.engine.ruleChanged(p.project.id, rule.id, rule);
    expect(n.scheduler.size).toBe(2);
    // It logs in on node b before its offline time is up (the event went to b, not here).
    await setSession(moves, 'b', true);
    now += 5_000;
    await n.scheduler.runDue();
    await n.engine.idle();
    expect(n.entries.map((e) => e.deviceId)).toEqual([stays]);
    expect(n.scheduler.size).toBe(0);
  });

  it('an offline timer whose device just logged in on another node (not yet written) does not fire', async () => {
    const { p, rule, ids } = await setup({ kind: 'offline', for_seconds: 5 }, [
      { name: 'back elsewhere', session: 'a' },
      { name: 'still away', session: 'a' },
    ]);
    const [back, away] = ids as [string, string];
    const n = node();
    await n.engine.ruleChanged(p.project.id, rule.id, rule);
    // Node b holds it now (the directory says so); its online write is still a second away.
    n.ownership.connected.add(back);
    now += 5_000;
    await n.scheduler.runDue();
    await n.engine.idle();
    expect(n.entries.map((e) => e.deviceId)).toEqual([away]);
  });

  it('the node that takes a device over (its session node rewritten to it) raises its offline alarm', async () => {
    const { p, ids } = await setup({ kind: 'offline', for_seconds: 2 }, [{ name: 'taken', session: 'dead' }]);
    const [taken] = ids as [string];
    const n = node(false);
    // The reaper of this node wrote the device offline under its own id, then announced it here.
    await setSession(taken, 'a');
    n.bus.emit('device.offline', {
      projectId: p.project.id,
      deviceId: taken,
      transport: 'cluster',
      ts: now,
      reason: 'node lost',
    });
    await n.engine.idle();
    now += 2_000;
    await n.scheduler.runDue();
    await n.engine.idle();
    expect(n.entries).toEqual([{ deviceId: taken, status: 1, kind: 'offline' }]);
  });

  it('an offline alarm raised by the node the device was on recovers when the device logs in here', async () => {
    const { p, rule, ids } = await setup({ kind: 'offline', for_seconds: 5 }, [{ name: 'returns', session: 'b' }]);
    const [returning] = ids as [string];
    const n = node();
    await n.engine.ruleChanged(p.project.id, rule.id, rule);
    // Node b raised it (this node's evaluator never saw it).
    const raised = await app.repo.trigger({
      id: newId(now),
      projectId: p.project.id,
      deviceId: returning,
      ruleId: rule.id,
      alarmLevel: 1,
      alarmInfo: { kind: 'offline' },
      createTime: now,
    });
    await setSession(returning, 'a', true);
    n.bus.emit('device.online', { projectId: p.project.id, deviceId: returning, transport: 'mqtt', ts: now });
    await n.engine.idle();
    expect(n.entries).toEqual([{ deviceId: returning, status: 0, kind: undefined }]);
    expect(await app.repo.activeTriggers(p.project.id, rule.id, returning)).toEqual([]);
    expect((await app.repo.getLog({ projectId: p.project.id }, raised!.id))?.log.endTime).toBe(now);
  });

  it('a silence timer counts a report stored by another node (HTTP) and fires only after the real silence', async () => {
    const { p, rule, ids } = await setup({ kind: 'silence', seconds: 10 }, [{ name: 'quiet', session: 'a' }]);
    const [quietId] = ids as [string];
    const n = node();
    await n.engine.ruleChanged(p.project.id, rule.id, rule);
    // A report over HTTP on node b: stored in active_ts, never seen by this node's evaluator.
    now += 8_000;
    await app.ctx.database.db.execute(
      sql`update devices set active_ts = active_ts || ${JSON.stringify({ attributes: now })}::jsonb where id = ${quietId}`,
    );
    now += 3_000; // 10 s after the last report seen here, 3 s after the stored one
    await n.scheduler.runDue();
    await n.engine.idle();
    expect(n.entries).toEqual([]);
    now += 7_000; // 10 s after the stored report
    await n.scheduler.runDue();
    await n.engine.idle();
    expect(n.entries).toEqual([{ deviceId: quietId, status: 1, kind: 'silence' }]);
    // Reports keep arriving on node b: the alarm recovers at the next check.
    await app.ctx.database.db.execute(
      sql`update devices set active_ts = active_ts || ${JSON.stringify({ attributes: now + 1_000 })}::jsonb where id = ${quietId}`,
    );
    now += 10_000;
    await n.scheduler.runDue();
    await n.engine.idle();
    expect(n.entries.map((e) => e.status)).toEqual([1, 0]);
  });
});

describe('changes made on another node', () => {
  it("reach this node's evaluator through the bus: a rule read again, a cleared alarm forgotten; its own echoes are ignored", async () => {
    const p = await createProject(app.ctx);
    const type = await addDeviceType(p.api, { name: 'Boiler' });
    const d = await addDevice(p.api, { name: 'boiler', type: type.id });
    const identity = directIdentity(p.project.id, { ...d, type: type.id });
    const { alarms, bus, currentValues } = app.ctx.services;
    const report = async (temp: number) => {
      await currentValues.report(identity, { temp });
      await alarms.idle();
    };
    const active = async () => (await app.repo.activeTriggers(p.project.id, rule.id, d.id)).map((r) => r.log);
    await report(50); // the project's rules (none) are read and cached here
    // Another node stores a rule: this node's cache does not know it yet.
    const rule = alarmRuleRow(now, {
      projectId: p.project.id,
      deviceTypeId: type.id,
      name: 'hot',
      condition: { kind: 'attribute', identifier: 'temp', op: '>', value: 30 },
    });
    await app.repo.insertRule(rule);
    await report(51);
    expect(await active()).toEqual([]);
    // This node's own announcement comes back from the bus: nothing to do (it applied it already).
    bus.emit('alarm_rule.changed', { projectId: p.project.id, ruleId: rule.id, origin: 'local' });
    await report(52);
    expect(await active()).toEqual([]);
    bus.emit('alarm_rule.changed', { projectId: p.project.id, ruleId: rule.id, origin: 'node-b' }, { remote: true });
    await new Promise((r) => setTimeout(r, 100));
    await report(53);
    const [log] = await active();
    expect(log).toMatchObject({ deviceId: d.id, ruleId: rule.id, alarmStatus: 1 });
    expect(alarms.engine.activeCount()).toBe(1);
    // An operator clears it on node B (which writes the end): this node forgets its active alarm.
    await app.repo.end(
      log!.id,
      {
        id: newId(now),
        projectId: p.project.id,
        deviceId: d.id,
        ruleId: rule.id,
        alarmLevel: 1,
        alarmInfo: {},
        createTime: now,
      },
      { by: 'app:x', note: 'seen' },
    );
    bus.emit(
      'alarm.cleared',
      { projectId: p.project.id, deviceId: d.id, ruleId: rule.id, logId: log!.id, origin: 'node-b' },
      { remote: true },
    );
    await alarms.idle();
    expect(alarms.engine.activeCount()).toBe(0);
    // Still hot: no new alarm until it stops holding (as after a clear on this node).
    await report(54);
    expect(await active()).toEqual([]);
    await report(20);
    await report(60);
    expect(await active()).toHaveLength(1);
  });

  it("a target removed on another node drops this node's waiting deliveries; their rows are the origin's to delete", async () => {
    const p = await createProject(app.ctx);
    const type = await addDeviceType(p.api, { name: 'Tank' });
    const d = await addDevice(p.api, { name: 'tank', type: type.id });
    const identity = directIdentity(p.project.id, { ...d, type: type.id });
    const { alarms, bus, currentValues } = app.ctx.services;
    expectOk(
      await p.api.post('/api/v1/alarm_rule', {
        name: 'full',
        device_type_id: type.id,
        level: 1,
        condition: { kind: 'attribute', identifier: 'level', op: '>', value: 90 },
      }),
    );
    const target = expectOk(
      await p.api.post('/api/v1/notification_target', { name: 'ops', url: 'http://127.0.0.1:9/hook' }),
    );
    await currentValues.report(identity, { level: 95 });
    await alarms.idle();
    expect(alarms.notifier.projectPending(p.project.id)).toBe(1); // failed once, waiting for its retry
    const rows = () => repoJobs(p.project.id);
    expect(await rows()).toHaveLength(1);
    // Its own echo changes nothing.
    bus.emit('notification_target.changed', {
      projectId: p.project.id,
      targetId: target.id,
      removed: true,
      origin: 'local',
    });
    await alarms.idle();
    expect(alarms.notifier.projectPending(p.project.id)).toBe(1);
    bus.emit(
      'notification_target.changed',
      { projectId: p.project.id, targetId: target.id, removed: true, origin: 'node-b' },
      { remote: true },
    );
    await alarms.idle();
    expect(alarms.notifier.projectPending(p.project.id)).toBe(0);
    expect(await rows()).toHaveLength(1);
  });
});

describe('a device that comes back from another node', () => {
  it('forgets an attribute alarm the other node ended: it fires again while the condition holds, and recovers', async () => {
    const { n, deviceId: roams, report, presence, active, endElsewhere } = await hotDevice('roams');
    await presence(true);
    await report(50);
    const [first] = await active();
    expect(first).toBeDefined();
    // It moves to node b, which sees it cool down and ends the alarm there.
    await setSession(roams, 'b', true);
    await presence(false);
    await endElsewhere(first!);
    // Back on this node, hot again: a new alarm, then its recovery.
    await setSession(roams, 'a', true);
    await presence(true);
    await report(55);
    const [second] = await active();
    expect(second).toBeDefined();
    expect(second).not.toBe(first);
    await report(20);
    expect(await active()).toEqual([]);
    expect(n.entries.map((e) => [e.deviceId, e.status])).toEqual([
      [roams, 1],
      [roams, 1],
      [roams, 0],
    ]);
    expect(n.engine.activeCount()).toBe(0);
  });

  it('takes up an alarm the other node raised again after ending the one this node remembers', async () => {
    const { projectId, rule, deviceId: bounces, report, presence, active, endElsewhere } = await hotDevice('bounces');
    const online = () => presence(true);
    await online();
    await report(50);
    const [first] = await active();
    // On node b it cooled down (alarm ended) and heated up again (a new alarm, raised there).
    await setSession(bounces, 'b', true);
    await endElsewhere(first!);
    const raised = await app.repo.trigger({
      id: newId(now + 1),
      projectId,
      deviceId: bounces,
      ruleId: rule.id,
      alarmLevel: 1,
      alarmInfo: { kind: 'attribute' },
      createTime: now,
    });
    await setSession(bounces, 'a', true);
    await online();
    // It cools down here: node b's alarm is the one that ends.
    await report(20);
    expect(await active()).toEqual([]);
    expect((await app.repo.getLog({ projectId }, raised!.id))?.log.endTime).toBe(now);
  });
});
