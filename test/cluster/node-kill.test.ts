import mqtt from 'mqtt';
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { clusterProject, clusterSuite, type TestCluster } from '../helpers/cluster.ts';
import { until } from '../helpers/wait.ts';

/**
 * No loss across a node kill (docs/cluster.md §3, README "An acknowledgement means stored"): devices stream
 * numbered QoS 1 reports through node B and know node A too (mqtt.js `servers`, as the simulator's `--host a,b`);
 * node B is SIGKILLed mid-stream; they reconnect to A, where the reports they had not seen acknowledged are sent
 * again. Every acknowledged report is in history; those acknowledged before the kill and those sent after it
 * exactly once. A report in flight at the kill may be stored twice: node B may have stored it without its
 * acknowledgement getting out, and the device sends it again to A with nothing that tells A it is the same
 * (MQTT QoS 1 is at least once; docs/cluster.md §8). Each device ends up online on A.
 */
// Reports wait up to 200 ms to be written in batches: a wide window for a kill to catch acknowledged reports
// not yet written, if an acknowledgement ever came before the write.
const suite = await clusterSuite(2, { extraEnv: { INGEST_BATCH_DELAY_MS: '200' } });
const { skip, clients } = suite;

const DEVICES = 20;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(skip)('a node killed while devices stream through it', () => {
  it('loses no acknowledged report, stores twice none but those in flight at the kill; devices end up on A', async () => {
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
    const beforeKill = acked.length;
    const sentAtKill = sent;
    const ackedBeforeKill = new Set(acked);
    await b.stop('SIGKILL');
    // The devices reconnect to A and go on; reports acknowledged after the kill prove the failover.
    await until(() => acked.length >= beforeKill + 100, 'reports acknowledged by node A', {
      timeout: 30_000,
      interval: 100,
    });
    streaming = false;
    await stream;
    await until(() => done === sent, 'every report answered', { timeout: 20_000, interval: 100 });

    const sql = postgres(suite.cluster.databaseUrl, { max: 1, onnotice: () => {} });
    try {
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
      // In flight at the kill: sent before it, not acknowledged before it.
      const inFlight = (s: number) => s < sentAtKill && !ackedBeforeKill.has(s);
      const twice = acked.filter((s) => !inFlight(s) && (stored.get(s) ?? 0) > 1);
      const thrice = acked.filter((s) => (stored.get(s) ?? 0) > 2);
      expect({ acked: acked.length, lost, twice, thrice }).toEqual({
        acked: acked.length,
        lost: [],
        twice: [],
        thrice: [],
      });

      const online = await sql<{ n: number }[]>`
        select count(*)::int as n from devices where project_id = ${p.project.id} and online and session_node = ${a.id}`;
      expect(online[0]!.n).toBe(DEVICES);
    } finally {
      await sql.end({ timeout: 5 });
    }
  });
});
