import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { rowsOf } from '../../src/db/client.ts';
import { createPresenceRepository, type PresenceRow } from '../../src/db/repositories/presence.repository.ts';
import { createPresenceService } from '../../src/domain/devices/presence.service.ts';
import { createEventBus } from '../../src/domain/events/event-bus.ts';
import { createProject, createTestApp, type ProjectFixture, type TestContext } from '../helpers/app.ts';
import { addDevice, directIdentity } from '../helpers/factories.ts';

/**
 * Online state in cluster mode (docs/cluster.md §3), against the real statements (PGlite, or PostgreSQL
 * with TEST_DATABASE_URL): "online" only over an older session, "offline" only over the writer's own
 * session, a restart resets only its own node's devices, a lost node's devices are reaped once.
 */
let ctx: TestContext;
let p: ProjectFixture;
let repo: ReturnType<typeof createPresenceRepository>;
beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx, 'presence cluster');
  repo = createPresenceRepository(ctx.database.db);
});
afterAll(() => ctx?.close());

interface State {
  online: boolean;
  node: string | null;
  epoch: number | null;
  active_ts: Record<string, number>;
}
async function state(id: string): Promise<State> {
  const rows = rowsOf<{ online: boolean; node: string | null; epoch: string | number | null; active_ts: unknown }>(
    await ctx.database.db.execute(
      sql`select online, session_node as node, session_epoch as epoch, active_ts from devices where id = ${id}`,
    ),
  );
  const r = rows[0]!;
  const ts = typeof r.active_ts === 'string' ? JSON.parse(r.active_ts) : r.active_ts;
  return { online: r.online, node: r.node, epoch: r.epoch === null ? null : Number(r.epoch), active_ts: ts };
}
const row = (deviceId: string, online: boolean | undefined, epoch?: number, activeTs: Record<string, number> = {}) =>
  ({ deviceId, ...(online === undefined ? {} : { online }), ...(epoch ? { epoch } : {}), activeTs }) as PresenceRow;
const device = async (name: string) => (await addDevice(p.api, { name })).id;

describe('the cluster flush of online state', () => {
  it('writes online over an older session only, and a late offline of the older one changes nothing', async () => {
    const id = await device('moved');
    await repo.apply([row(id, true, 10, { connect: 1 })], 'A');
    expect(await state(id)).toMatchObject({ online: true, node: 'A', epoch: 10 });
    // The device logs in on B (a newer epoch): B holds it.
    await repo.apply([row(id, true, 11, { connect: 2 })], 'B');
    expect(await state(id)).toMatchObject({ online: true, node: 'B', epoch: 11 });
    // A's disconnect of its older session arrives late: the device stays online on B (its time is kept).
    await repo.apply([row(id, false, 10, { disconnect: 3 })], 'A');
    expect(await state(id)).toMatchObject({ online: true, node: 'B', epoch: 11, active_ts: { disconnect: 3 } });
    // Without its epoch either.
    await repo.apply([row(id, false)], 'A');
    expect(await state(id)).toMatchObject({ online: true, node: 'B', epoch: 11 });
    // A's older session writing "online" late (its epoch came late) does not take the device back.
    await repo.apply([row(id, true, 10)], 'A');
    expect(await state(id)).toMatchObject({ online: true, node: 'B', epoch: 11 });
    // B's own disconnect takes it offline.
    await repo.apply([row(id, false, 11)], 'B');
    expect(await state(id)).toMatchObject({ online: false, node: 'B', epoch: 11 });
  });

  it('takes it offline when the older session ends first, then online again with the newer login', async () => {
    const id = await device('in order');
    await repo.apply([row(id, true, 20)], 'A');
    await repo.apply([row(id, false, 20)], 'A');
    expect(await state(id)).toMatchObject({ online: false, node: 'A', epoch: 20 });
    await repo.apply([row(id, true, 21)], 'B');
    expect(await state(id)).toMatchObject({ online: true, node: 'B', epoch: 21 });
  });

  it('writes online without an epoch only where no other node holds the device online', async () => {
    const id = await device('no epoch yet');
    await repo.apply([row(id, true)], 'A');
    expect(await state(id)).toMatchObject({ online: true, node: 'A', epoch: null });
    // B's session without its epoch: A holds it online, B waits for its epoch.
    await repo.apply([row(id, true)], 'B');
    expect(await state(id)).toMatchObject({ online: true, node: 'A' });
    await repo.apply([row(id, true, 31)], 'B');
    expect(await state(id)).toMatchObject({ online: true, node: 'B', epoch: 31 });
    // A's session ends without an epoch ever known: not its device any more.
    await repo.apply([row(id, false)], 'A');
    expect(await state(id)).toMatchObject({ online: true, node: 'B' });
    // An offline written with the epoch of a session that was never written online (older ones of B's own) holds.
    await repo.apply([row(id, false, 31)], 'B');
    await repo.apply([row(id, true)], 'C');
    expect(await state(id)).toMatchObject({ online: true, node: 'C', epoch: 31 });
  });

  it('is one statement for a batch of many devices, merging activity whoever holds the session', async () => {
    const ids = await Promise.all(['b1', 'b2', 'b3'].map(device));
    await repo.apply([row(ids[0]!, true, 40)], 'B');
    // Statements through drizzle, and prepared ones sent to postgres.js directly (db/client.ts runPrepared).
    const execute = vi.spyOn(ctx.database.db, 'execute');
    const client = (ctx.database.db as { $client?: { unsafe?: unknown } }).$client;
    const unsafe =
      typeof client?.unsafe === 'function' ? vi.spyOn(client as { unsafe: () => unknown }, 'unsafe') : undefined;
    try {
      await repo.apply(
        [row(ids[0]!, undefined, undefined, { attributes: 5 }), row(ids[1]!, true, 41), row(ids[2]!, false, 42)],
        'A',
      );
      expect(execute.mock.calls.length + (unsafe?.mock.calls.length ?? 0)).toBe(1);
    } finally {
      execute.mockRestore();
      unsafe?.mockRestore();
    }
    expect(await state(ids[0]!)).toMatchObject({ online: true, node: 'B', active_ts: { attributes: 5 } });
    expect(await state(ids[1]!)).toMatchObject({ online: true, node: 'A', epoch: 41 });
    expect(await state(ids[2]!)).toMatchObject({ online: false, node: null });
  });

  it('resets at start only the restarted node’s devices and those no node claims', async () => {
    const [a, b, legacy] = await Promise.all(['reset-a', 'reset-b', 'reset-legacy'].map(device));
    await repo.apply([row(a!, true, 50)], 'A');
    await repo.apply([row(b!, true, 51)], 'B');
    await repo.apply([row(legacy!, true)]); // one node's write: no session node
    await repo.resetOnline('C'); // a new node starting
    expect((await state(a!)).online).toBe(true);
    expect((await state(b!)).online).toBe(true);
    expect((await state(legacy!)).online).toBe(false);
    await repo.resetOnline('A'); // A restarted under the same NODE_ID
    expect((await state(a!)).online).toBe(false);
    expect((await state(b!)).online).toBe(true);
  });

  it('reaps a lost node’s devices once, and sweeps those of nodes not alive', async () => {
    const [a, b, c] = await Promise.all(['reap-a', 'reap-b', 'reap-c'].map(device));
    await repo.apply([row(a!, true, 60)], 'A');
    await repo.apply([row(b!, true, 61)], 'B');
    await repo.apply([row(c!, true, 62)], 'Gone');
    const ts = Date.now();
    const mine = (changes: { deviceId: string }[]) => changes.filter((d) => [a, b, c].includes(d.deviceId));
    const reaped = mine(await repo.reapNode('B', 'A', ts));
    expect(reaped).toEqual([{ deviceId: b, projectId: p.project.id }]);
    expect(await state(b!)).toMatchObject({ online: false, node: 'A', epoch: 61 });
    expect((await state(b!)).active_ts.disconnect).toBe(ts);
    expect(mine(await repo.reapNode('B', 'A', ts))).toEqual([]);
    expect((await state(a!)).online).toBe(true);
    const swept = mine(await repo.reapAllBut(['A', 'B'], 'A', ts));
    expect(swept).toEqual([{ deviceId: c, projectId: p.project.id }]);
    expect((await state(a!)).online).toBe(true);
    // The reaped session comes back (its node was only cut off): it re-asserts it with its own epoch.
    const back = await repo.reassert([{ deviceId: b!, epoch: 61 }, { deviceId: a! }], 'B');
    expect(back).toEqual([{ deviceId: b, projectId: p.project.id }]);
    expect(await state(b!)).toMatchObject({ online: true, node: 'B', epoch: 61 });
    expect(await state(a!)).toMatchObject({ online: true, node: 'A' });
    // Not over a newer login.
    await repo.apply([row(b!, true, 70)], 'C');
    expect(await repo.reassert([{ deviceId: b!, epoch: 61 }], 'B')).toEqual([]);
    expect(await state(b!)).toMatchObject({ online: true, node: 'C', epoch: 70 });
  });
});

describe('two nodes’ presence over one database', () => {
  const node = (name: string) =>
    createPresenceService({
      repo: createPresenceRepository(ctx.database.db),
      bus: createEventBus(),
      logger: { error: () => {} },
      node: name,
    });

  it('keeps a device online after a late disconnect on the node it left', async () => {
    const d = await addDevice(p.api, { name: 'login twice' });
    const identity = directIdentity(p.project.id, d);
    const a = node('A');
    const b = node('B');
    a.connected(identity, 'mqtt');
    a.sessionEpoch(d.id, 100);
    await a.flush();
    // The same device logs in on B; its epoch comes after B's first write.
    b.connected(identity, 'mqtt');
    await b.flush();
    b.sessionEpoch(d.id, 101);
    await b.flush();
    // A's session is closed by the newer login and its disconnect is written late.
    a.disconnected(identity, 'mqtt', 'kicked');
    await a.flush();
    expect(await state(d.id)).toMatchObject({ online: true, node: 'B', epoch: 101 });
    b.disconnected(identity, 'mqtt', 'disconnect');
    await b.flush();
    expect(await state(d.id)).toMatchObject({ online: false, node: 'B' });
  });

  it('keeps it online when the older node writes its online after the newer login', async () => {
    const d = await addDevice(p.api, { name: 'slow epoch' });
    const identity = directIdentity(p.project.id, d);
    const a = node('A');
    const b = node('B');
    a.connected(identity, 'mqtt');
    b.connected(identity, 'mqtt');
    b.sessionEpoch(d.id, 201);
    await b.flush();
    // A flushes its older session late, first without its epoch, then with it.
    await a.flush();
    a.sessionEpoch(d.id, 200);
    await a.flush();
    a.disconnected(identity, 'mqtt', 'kicked');
    await a.flush();
    expect(await state(d.id)).toMatchObject({ online: true, node: 'B', epoch: 201 });
  });
});

describe('epochs of a session directory made anew', () => {
  it('are forgotten above the directory’s last one, so new sessions may write online again', async () => {
    const old = await device('epoch from a lost directory');
    const kept = await device('epoch of the directory');
    await repo.apply([row(old, true, 5_000, { connect: 1 })], 'A');
    await repo.apply([row(kept, true, 40, { connect: 1 })], 'A');
    // The directory now counts from 1 again: its last epoch is 50.
    expect(await repo.forgetEpochsAbove(50)).toBeGreaterThanOrEqual(1);
    expect(await state(old)).toMatchObject({ epoch: null });
    expect(await state(kept)).toMatchObject({ epoch: 40 });
    // A new session of the directory (epoch 51) is written online over the forgotten one.
    await repo.apply([row(old, false, 4_999)], 'A');
    await repo.apply([row(old, true, 51, { connect: 2 })], 'B');
    expect(await state(old)).toMatchObject({ online: true, node: 'B', epoch: 51 });
  });
});

describe('the flush’s writes of devices', () => {
  /**
   * The updates a statement made of `devices` in this transaction, and how many of them were in place (HOT:
   * the row rewritten on its page, no new entry in any index; docs/scaling.md §4). An index holding `online`
   * or `active` makes every connect, disconnect and first report a new entry in each index of the table.
   */
  async function updatesOf(write: (tx: ReturnType<typeof createPresenceRepository>) => Promise<unknown>) {
    return ctx.database.db.transaction(async (tx) => {
      // The counts of the transaction not yet reported (PGlite's one session reports them late): a difference.
      const counts = async () => {
        const [c] = rowsOf<{ upd: string | number; hot: string | number }>(
          await tx.execute(
            sql`select n_tup_upd as upd, n_tup_hot_upd as hot from pg_stat_xact_user_tables where relname = 'devices'`,
          ),
        );
        return { updated: Number(c?.upd ?? 0), inPlace: Number(c?.hot ?? 0) };
      };
      const before = await counts();
      await write(createPresenceRepository(tx as unknown as Parameters<typeof createPresenceRepository>[0]));
      const after = await counts();
      return { updated: after.updated - before.updated, inPlace: after.inPlace - before.inPlace };
    });
  }

  it('are updates in place: online, offline and the first activity, single node and cluster alike', async () => {
    const [a, b] = [await device('in place a'), await device('in place b')];
    // Single node: online (no activity yet), then the first report (active), then offline.
    expect(await updatesOf((r) => r.apply([row(a, true), row(b, true)]))).toEqual({ updated: 2, inPlace: 2 });
    expect(await updatesOf((r) => r.apply([row(a, undefined, undefined, { report: 1 })]))).toEqual({
      updated: 1,
      inPlace: 1,
    });
    expect(await updatesOf((r) => r.apply([row(a, false), row(b, false)]))).toEqual({ updated: 2, inPlace: 2 });
    // Cluster mode writes the session's node and epoch too.
    expect(await updatesOf((r) => r.apply([row(a, true, 70, { connect: 2 })], 'A'))).toEqual({
      updated: 1,
      inPlace: 1,
    });
    expect(await state(a)).toMatchObject({ online: true, node: 'A', epoch: 70 });
  });

  it('are in place when devices created together connect together (a page’s rows in one statement)', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) ids.push(await device(`made together ${i}`));
    // A page filled to 50% has room for a new version of each of its rows, unless they grew (their activity
    // times) or the page was shared with rows updated before: nearly all, not always all. With fillfactor 70
    // 23 of the 60 were in place.
    const online = await updatesOf((r) => r.apply(ids.map((id) => row(id, true, undefined, { connect: 5 }))));
    expect(online.updated).toBe(60);
    expect(online.inPlace).toBeGreaterThanOrEqual(54);
  });
});
