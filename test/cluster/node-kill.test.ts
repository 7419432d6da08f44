import mqtt from 'mqtt';
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { ResendStore } from '../../simulator/resend-store.ts';
import { clusterProject, clusterSuite, type TestCluster } from '../helpers/cluster.ts';
import { rawMqttDevice } from '../helpers/raw-mqtt.ts';
import { until } from '../helpers/wait.ts';

/**
 * No loss across a node kill (docs/cluster.md §3, §8, README "An acknowledgement means stored"): devices stream
 * numbered QoS 1 reports through node B and know node A too (mqtt.js `servers`, as the simulator's `--host a,b`,
 * with the simulator's store, which marks resends DUP); node B is SIGKILLed mid-stream; they reconnect to A, where
 * the reports they had not seen acknowledged are sent again. Every acknowledged report is in history exactly once,
 * those in flight at the kill included: a report B stored without its acknowledgement getting out is matched on A
 * by the receipt B wrote with it (device-protocol.md §3.3). A device that dropped its connection to B unread, with
 * a report stored there, proves that case every run. Each device ends up online on A.
 */
// Reports wait up to 200 ms to be written in batches: a wide window for a kill to catch acknowledged reports
// not yet written, if an acknowledgement ever came before the write.
const suite = await clusterSuite(2, { extraEnv: { INGEST_BATCH_DELAY_MS: '200' } });
const { skip, clients } = suite;

const DEVICES = 20;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(skip)('a node killed while devices stream through it', () => {
  it('loses no acknowledged report and stores none twice, in flight at the kill included; devices end up on A', async () => {
    const [a, b] = suite.cluster.nodes as [TestCluster['nodes'][0], TestCluster['nodes'][0]];
    const p = await clusterProject(a.http);
    const devices = await Promise.all(Array.from({ length: DEVICES }, (_, i) => p.device(`streamer-${i}`)));
    const portOf = (url: string) => Number(new URL(url).port);
    for (const [i, d] of devices.entries()) {
      const c = await mqtt.connectAsync({
        servers: [
          { host: '127.0.0.1', port: portOf(b.mqttUrl) },
          { host: '127.0.0.1', port: portOf(a.mqttUrl) },
        ],
        username: d.accessToken,
        password: d.projectKey,
        clientId: `streamer-${i}`,
        reconnectPeriod: 300,
        connectTimeout: 5_000,
        outgoingStore: new ResendStore(),
      });
      c.on('error', () => {});
      clients.push(c);
    }

    const acked: number[] = [];
    let sent = 0;
    let done = 0;
    let streaming = true;
    const stream = (async () => {
      for (let seq = 0; streaming; seq++) {
        const c = clients[seq % DEVICES]!;
        sent++;
        // Published while reconnecting too: mqtt.js keeps QoS 1 messages and sends them once connected.
        c.publish('attributes', JSON.stringify({ seq }), { qos: 1 }, (err) => {
          done++;
          if (!err) acked.push(seq);
        });
        await sleep(10);
      }
    })();
    await until(() => acked.length >= 50, 'reports acknowledged by node B', { timeout: 10_000, interval: 50 });
    // A report stored by B whose acknowledgement never reaches the device: it drops the connection unread.
    const sql = postgres(suite.cluster.databaseUrl, { max: 1, onnotice: () => {} });
    const lone = await p.device('lone');
    const onB = await rawMqttDevice(portOf(b.mqttUrl), lone.accessToken, lone.projectKey);
    const lonePayload = JSON.stringify({ lone: 1 });
    onB.send('attributes', lonePayload, { messageId: 42 });
    const loneRows = async () =>
      (
        await sql<{ n: number }[]>`
          select count(*)::int as n from attribute_history where project_id = ${p.project.id} and identifier = 'lone'`
      )[0]!.n;
    await until(async () => (await loneRows()) === 1, 'the lone report stored by B', { timeout: 10_000, interval: 20 });
    const beforeKill = acked.length;
    await b.stop('SIGKILL');
    onB.destroy();
    // It sends the report again to A, marked DUP: acknowledged, not stored again.
    const onA = await rawMqttDevice(portOf(a.mqttUrl), lone.accessToken, lone.projectKey);
    await onA.publish('attributes', lonePayload, { messageId: 42, dup: true });
    onA.destroy();
    // The devices reconnect to A and go on; reports acknowledged after the kill prove the failover.
    await until(() => acked.length >= beforeKill + 100, 'reports acknowledged by node A', {
      timeout: 30_000,
      interval: 100,
    });
    streaming = false;
    await stream;
    await until(() => done === sent, 'every report answered', { timeout: 20_000, interval: 100 });

    try {
      expect(await loneRows()).toBe(1);
      // The write-behind of reports reaches history within a few seconds.
      let stored = new Map<number, number>();
      await until(
        async () => {
          const rows = await sql<{ seq: string; n: number }[]>`
            select num::bigint as seq, count(*)::int as n from attribute_history
            where project_id = ${p.project.id} and identifier = 'seq' group by num`;
          stored = new Map(rows.map((r) => [Number(r.seq), r.n]));
          return acked.every((s) => stored.has(s));
        },
        'every acknowledged report in history',
        { timeout: 15_000, interval: 250 },
      ).catch(() => undefined);
      const lost = acked.filter((s) => !stored.has(s));
      const twice = acked.filter((s) => (stored.get(s) ?? 0) > 1);
      expect({ acked: acked.length, lost, twice }).toEqual({ acked: acked.length, lost: [], twice: [] });

      const online = await sql<{ n: number }[]>`
        select count(*)::int as n from devices where project_id = ${p.project.id} and online and session_node = ${a.id}`;
      expect(online[0]!.n).toBe(DEVICES);
    } finally {
      await sql.end({ timeout: 5 });
    }
  });
});
