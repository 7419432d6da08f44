import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAlarmsRepository } from '../../src/db/repositories/alarms.repository.ts';
import { createNotifyJobsRepository, type NewNotifyJob } from '../../src/db/repositories/notify-jobs.repository.ts';
import { createNotifier } from '../../src/domain/alarms/notifier.ts';
import { createScheduler } from '../../src/domain/alarms/scheduler.ts';
import { newId } from '../../src/lib/ids.ts';
import { createProject, createTestApp, expectOk, type TestContext } from '../helpers/app.ts';
import { addDevice, addDeviceType } from '../helpers/factories.ts';
import { until } from '../helpers/wait.ts';

/**
 * Webhook job claims (docs/cluster.md §4): a job runs on the node that claims it; a claim lapses when its
 * node stops renewing it, and another node takes the job over. PGlite, or PostgreSQL with TEST_DATABASE_URL.
 */
let ctx: TestContext;
let jobs: ReturnType<typeof createNotifyJobsRepository>;
const now = Date.now();
/** Waits that ask the jobs table do so every 50 ms (each probe is a query), for at most 5 s. */
const DB_POLL = { interval: 50 };

/** A local webhook receiver counting POSTs. */
let posts = 0;
let server: http.Server;
let hookUrl: string;

beforeAll(async () => {
  ctx = await createTestApp({}, { settings: { alarmNotify: { allowNetworks: '127.0.0.0/8' } } });
  jobs = createNotifyJobsRepository(ctx.database.db);
  server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      posts++;
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  hookUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
});
afterAll(async () => {
  await ctx?.close();
  await new Promise((resolve) => server.close(resolve));
});

/** A project with one alarm entry and one target, and `n` jobs delivering the entry to the target. */
async function withJobs(n: number, claim?: { by: string; until: number }, url = 'http://127.0.0.1:9/x', dueTime = now) {
  const p = await createProject(ctx);
  const type = await addDeviceType(p.api, { name: 'Sensor' });
  const d = await addDevice(p.api, { name: 'pump', type: type.id });
  const rule = expectOk(
    await p.api.post('/api/v1/alarm_rule', {
      name: 'hot',
      device_type_id: type.id,
      level: 1,
      condition: { kind: 'attribute', identifier: 'temp', op: '>', value: 30 },
    }),
  );
  const target = expectOk(await p.api.post('/api/v1/notification_target', { name: 'ops', url }));
  const log = await createAlarmsRepository(ctx.database.db).trigger({
    id: newId(now),
    projectId: p.project.id,
    deviceId: d.id,
    ruleId: rule.id,
    alarmLevel: 1,
    alarmInfo: {},
    createTime: now,
  });
  const rows: NewNotifyJob[] = Array.from({ length: n }, (_, i) => ({
    id: newId(now + i),
    projectId: p.project.id,
    targetId: target.id,
    logId: log!.id,
    body: '{}',
    attempt: 1,
    dueTime,
    createTime: now,
    ...(claim ? { claimedBy: claim.by, claimUntil: claim.until } : {}),
  }));
  await jobs.insertJobs(rows);
  return { projectId: p.project.id, ids: rows.map((r) => r.id), log: log!, device: d };
}

const holders = async (projectId: string) =>
  (await jobs.projectJobs(projectId)).map((j) => [j.claimedBy, j.claimUntil]);

describe('notify job claims', () => {
  it('a job nobody holds is claimed by one node; a second claim is refused until the first lapses', async () => {
    const { projectId, ids } = await withJobs(1);
    const [id] = ids as [string];
    expect(await jobs.claimJob(projectId, id, 'node-a', now + 10_000, now)).toMatchObject({
      id,
      claimedBy: 'node-a',
      claimUntil: now + 10_000,
    });
    expect(await jobs.claimJob(projectId, id, 'node-b', now + 10_000, now + 1_000)).toBeUndefined();
    // Its holder renews it.
    expect(await jobs.claimJob(projectId, id, 'node-a', now + 10_000, now + 1_000)).toMatchObject({
      claimedBy: 'node-a',
    });
    expect(await holders(projectId)).toEqual([['node-a', now + 10_000]]);
    // Node A stops renewing: once its claim has lapsed, node B takes the job.
    expect(await jobs.claimJob(projectId, id, 'node-b', now + 20_001, now + 10_001)).toMatchObject({
      claimedBy: 'node-b',
    });
    expect(await holders(projectId)).toEqual([['node-b', now + 20_001]]);
    // Another project's scope does not reach it.
    expect(await jobs.claimJob('another-project', id, 'node-c', now + 50_000, now + 40_000)).toBeUndefined();
  });

  it('renewal keeps a claim; a job taken by another node is no longer renewed by its former holder', async () => {
    const { projectId, ids } = await withJobs(2, { by: 'node-a', until: now + 10_000 });
    expect((await jobs.renewClaims('node-a', ids, now + 15_000)).sort()).toEqual([...ids].sort());
    // Renewed: still held at now + 12 s, when the old claim would have lapsed.
    expect(
      (await jobs.claimLapsed('node-b', now + 22_000, now + 12_000)).filter((j) => j.projectId === projectId),
    ).toEqual([]);
    // Lapsed at now + 16 s: node B takes both over, oldest first.
    const taken = await jobs.claimLapsed('node-b', now + 26_000, now + 16_000);
    expect(taken.filter((j) => j.projectId === projectId).map((j) => j.id)).toEqual(ids);
    expect(await jobs.renewClaims('node-a', ids, now + 30_000)).toEqual([]);
    expect(await holders(projectId)).toEqual([
      ['node-b', now + 26_000],
      ['node-b', now + 26_000],
    ]);
  });

  it("at start a node takes its own former claims back (own), not another live node's", async () => {
    const a = await withJobs(1, { by: 'node-a', until: now + 60_000 });
    const b = await withJobs(1, { by: 'node-b', until: now + 60_000 });
    const taken = await jobs.claimLapsed('node-a', now + 70_000, now, { own: true });
    const mine = taken.map((j) => j.id);
    expect(mine).toContain(a.ids[0]);
    expect(mine).not.toContain(b.ids[0]);
    expect(await holders(b.projectId)).toEqual([['node-b', now + 60_000]]);
  });

  it('released claims are taken at once by another node', async () => {
    const { projectId, ids } = await withJobs(1, { by: 'node-a', until: now + 60_000 });
    await jobs.releaseClaims('node-b', ids); // not node B's: nothing happens
    expect(await holders(projectId)).toEqual([['node-a', now + 60_000]]);
    await jobs.releaseClaims('node-a', ids);
    expect(await holders(projectId)).toEqual([[null, null]]);
    const taken = await jobs.claimLapsed('node-b', now + 10_000, now);
    expect(taken.map((j) => j.id)).toContain(ids[0]);
    expect(await jobs.claimedBy('node-b')).toBeGreaterThanOrEqual(1);
  });

  it('two nodes taking over at once share the jobs out: each job is claimed once', async () => {
    const { projectId, ids } = await withJobs(20);
    const [x, y] = await Promise.all([
      jobs.claimLapsed('node-x', now + 10_000, now),
      jobs.claimLapsed('node-y', now + 10_000, now),
    ]);
    const claimed = [...x, ...y].filter((j) => j.projectId === projectId).map((j) => j.id);
    expect(claimed.sort()).toEqual([...ids].sort());
  });
});

/** A notifier on a clock of its own; with `claims`, as a cluster node (no claims: one node alone). */
function notifier(clock: () => number, claims?: { node: string; claimMs: number; batch?: number }) {
  return createNotifier({
    repo: createAlarmsRepository(ctx.database.db),
    jobs,
    scheduler: createScheduler({ clock }),
    clock,
    logger: { warn: () => {}, error: () => {} },
    settings: { allowNetworks: '127.0.0.0/8' },
    ...(claims ? { claims } : {}),
  });
}

describe('notifiers of two nodes', () => {
  /**
   * A notifier of node `node` on a clock of its own; claims last `claimMs` (renewed every third), a
   * take-over claims `batch` jobs at most.
   */
  const notifierOf = (node: string, clock: () => number, claimMs = 300, batch?: number) =>
    notifier(clock, { node, claimMs, ...(batch ? { batch } : {}) });

  it("take over a dead node's jobs once its claims lapse, and leave a live node's alone", async () => {
    let t = Date.now();
    const { projectId } = await withJobs(2, { by: 'node-a', until: t + 1_000 }, hookUrl);
    posts = 0;
    const b = notifierOf('node-b', () => t);
    try {
      await b.recover();
      await new Promise((r) => setTimeout(r, 400)); // a few renewal rounds: node A's claims still hold
      expect(posts).toBe(0);
      expect(await jobs.projectJobs(projectId)).toHaveLength(2);
      t += 2_000; // node A stopped renewing: its claims have lapsed
      await until(() => posts === 2, 'both jobs delivered');
      await until(async () => (await jobs.projectJobs(projectId)).length === 0, 'no jobs left', DB_POLL);
    } finally {
      await b.stop();
    }
  });

  it('at start a node takes back all its former jobs at once, batch after batch', async () => {
    const t = Date.now();
    // Not due for an hour: they wait, nothing is delivered.
    const { projectId } = await withJobs(12, { by: 'node-r', until: t + 60_000 }, hookUrl, t + 3_600_000);
    const r = notifierOf('node-r', () => t, 60_000, 5);
    try {
      await r.recover();
      expect(r.projectPending(projectId)).toBe(12);
      expect((await holders(projectId)).every(([by]) => by === 'node-r')).toBe(true);
    } finally {
      await r.stop();
    }
  });

  it('two nodes taking up the same lapsed jobs deliver each once', async () => {
    const t = Date.now();
    const { projectId } = await withJobs(6, undefined, hookUrl);
    posts = 0;
    const b = notifierOf('node-b', () => t);
    const c = notifierOf('node-c', () => t);
    try {
      await Promise.all([b.recover(), c.recover()]);
      await until(async () => (await jobs.projectJobs(projectId)).length === 0, 'no jobs left', DB_POLL);
      await Promise.all([b.idle(), c.idle()]);
      expect(posts).toBe(6);
    } finally {
      await Promise.all([b.stop(), c.stop()]);
    }
  });
});

describe('one node (no cluster): no claims', () => {
  const single = (clock: () => number) => notifier(clock);

  it('a restart after a crash takes up every stored job at once, whoever claimed it, and writes no claim', async () => {
    const t = Date.now();
    // Left by a crashed run: claims that have not lapsed (this node's under the former default name, and
    // a former cluster node's), and unclaimed ones; more than one take-over batch (1,000). Due in an hour.
    const later = t + 3_600_000;
    const a = await withJobs(1_001, { by: 'local', until: t + 60_000 }, hookUrl, later);
    const b = await withJobs(3, { by: 'node-x', until: t + 60_000 }, hookUrl, later);
    const c = await withJobs(2, undefined, hookUrl, later);
    const before = await Promise.all([a, b, c].map((x) => holders(x.projectId)));
    const n = single(() => t);
    try {
      await n.recover();
      expect([a, b, c].map((x) => n.projectPending(x.projectId))).toEqual([1_001, 3, 2]);
      expect(await Promise.all([a, b, c].map((x) => holders(x.projectId)))).toEqual(before);
    } finally {
      await n.stop();
    }
    // Stopping releases nothing either: the rows are as they were.
    expect(await Promise.all([a, b, c].map((x) => holders(x.projectId)))).toEqual(before);
  });

  it('delivers a due job at once although a former cluster node still claims it; new jobs are stored unclaimed', async () => {
    const t = Date.now();
    const { projectId } = await withJobs(1, { by: 'node-x', until: t + 60_000 }, hookUrl, t);
    posts = 0;
    const n = single(() => t);
    try {
      await n.recover();
      await until(() => posts === 1, 'the job delivered');
      await until(async () => (await jobs.projectJobs(projectId)).length === 0, 'no jobs left', DB_POLL);
      // A new entry whose delivery fails (a closed port) and waits for its retry: its row names no node.
      const other = await withJobs(0);
      n.notify(other.projectId, { log: other.log, device: { id: other.device.id, name: other.device.name } });
      await until(
        async () => (await jobs.projectJobs(other.projectId)).some((j) => j.attempt === 2),
        'its retry stored (attempt 2)',
        DB_POLL,
      );
      expect(await holders(other.projectId)).toEqual([[null, null]]);
      expect(n.projectPending(other.projectId)).toBe(1);
    } finally {
      await n.stop();
    }
  });
});
