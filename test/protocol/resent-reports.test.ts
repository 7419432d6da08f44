import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowsOf } from '../../src/db/client.ts';
import { receiptOf } from '../../mqtt-broker/mqtt/publish.ts';
import { createProject, deviceWithToken, type ProjectFixture, type TestContext } from '../helpers/app.ts';
import { startAppWithBroker, type TestBroker } from '../helpers/broker.ts';
import { rawMqttDevice } from '../helpers/raw-mqtt.ts';
import { until } from '../helpers/wait.ts';

/**
 * Resent reports are stored once (device-protocol.md §3.3): a QoS 1 report stored before its PUBACK reached the
 * device, sent again with DUP on a new connection, is acknowledged and not stored again. Nothing else is matched:
 * not a report without DUP, not a different payload under the same packet id, not another device's identical
 * message, not a resend after the receipt was released.
 */
let ctx: TestContext;
let tb: TestBroker;
let close: () => Promise<void>;
let port: number;
beforeAll(async () => {
  ({ ctx, tb, close } = await startAppWithBroker());
  port = Number(new URL(tb.url).port);
});
afterAll(async () => {
  await close?.();
});

/** The values of `n` stored for the device, in order of storing. */
async function stored(p: ProjectFixture, deviceId: string): Promise<number[]> {
  await ctx.services.ingest.flush();
  const points = await ctx.services.historyStore.series(
    p.project.id,
    deviceId,
    'n',
    Date.now() - 3_600_000,
    Date.now() + 60_000,
    1_000,
    0,
  );
  return points.map((x) => x.value as number).sort((a, b) => a - b);
}

async function receiptKept(key: string): Promise<boolean> {
  const rows = rowsOf(
    await ctx.database.db.execute(sql`select 1 from report_receipts where ('x' || ${key})::bit(64)::int8 = any(keys)`),
  );
  return rows.length > 0;
}

async function device(name: string) {
  const p = await createProject(ctx, name);
  const d = await deviceWithToken(p);
  const connect = () => rawMqttDevice(port, d.token, p.project.project_key as string);
  return { p, d, connect };
}

describe('a resent QoS 1 report', () => {
  it('is acknowledged and stored once when its PUBACK was lost with the connection', async () => {
    const { p, d, connect } = await device('resend once');
    const first = await connect();
    const payload = JSON.stringify({ n: 1 });
    // The device never reads the PUBACK: it drops the connection once the report is stored.
    first.send('attributes', payload, { messageId: 7 });
    await until(async () => (await stored(p, d.id)).length === 1, 'the report stored');
    first.destroy();
    expect(await receiptKept(receiptOf(d.id, 7, 'attributes', Buffer.from(payload)))).toBe(true);

    const second = await connect();
    await second.publish('attributes', payload, { messageId: 7, dup: true });
    expect(await stored(p, d.id)).toEqual([1]);
    // The receipt is used up: it matches one resend, not a later report that happens to be its twin.
    // (The newest login wins: this connection replaces the second.)
    const third = await connect();
    await third.publish('attributes', payload, { messageId: 7, dup: true });
    expect(await stored(p, d.id)).toEqual([1, 1]);

    // The same packet id for a new report (no DUP, or another payload) is stored.
    await third.publish('attributes', payload, { messageId: 7 });
    await third.publish('attributes', JSON.stringify({ n: 2 }), { messageId: 7, dup: true });
    expect(await stored(p, d.id)).toEqual([1, 1, 1, 2]);
    third.destroy();
  });

  it('is not matched with an identical message of another device (another project)', async () => {
    const a = await device('resend tenant a');
    const b = await device('resend tenant b');
    const payload = JSON.stringify({ n: 5 });
    const da = await a.connect();
    await da.publish('attributes', payload, { messageId: 3 });
    const db = await b.connect();
    await db.publish('attributes', payload, { messageId: 3, dup: true });
    expect(await stored(a.p, a.d.id)).toEqual([5]);
    expect(await stored(b.p, b.d.id)).toEqual([5]);
    da.destroy();
    db.destroy();
  });

  it('is stored again once the receipt was released (its PUBACK had been out a while)', async () => {
    const { p, d, connect } = await device('resend late');
    const c = await connect();
    const payload = JSON.stringify({ n: 9 });
    await c.publish('attributes', payload, { messageId: 11 });
    const key = receiptOf(d.id, 11, 'attributes', Buffer.from(payload));
    // Released a second after the PUBACKs went out, by the next batch or the release timer.
    await until(async () => !(await receiptKept(key)), 'the receipt released', { timeout: 10_000 });
    await c.publish('attributes', payload, { messageId: 11, dup: true });
    expect(await stored(p, d.id)).toEqual([9, 9]);
    c.destroy();
  });

  it('of attributes/series is stored once too', async () => {
    const { p, d, connect } = await device('resend series');
    const payload = JSON.stringify([{ ts: Date.now() - 60_000, attributes: { n: 4 } }]);
    const c = await connect();
    c.send('attributes/series', payload, { messageId: 21 });
    await until(async () => (await stored(p, d.id)).length === 1, 'the series stored');
    c.destroy();
    const again = await connect();
    await again.publish('attributes/series', payload, { messageId: 21, dup: true });
    expect(await stored(p, d.id)).toEqual([4]);
    again.destroy();
  });
});
