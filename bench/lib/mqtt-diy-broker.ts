/**
 * The "do-it-yourself" reference of bench/ingest: what a competent integrator writes by hand to store MQTT
 * reports in PostgreSQL. A bare Aedes broker (the version the server pins, the options of
 * mqtt-bare-broker.ts) whose QoS 1 PUBACK waits until the report's values are committed: reports are queued,
 * one writer inserts everything that arrived while its previous INSERT ran (group commit), one multi-row
 * INSERT in autocommit per batch, and the PUBACKs of the batch go out after it committed. No authentication,
 * no checks, no current values, no events: the floor our ingest (docs/scaling.md §4) is measured against.
 *
 *   DATABASE_URL=postgres://… DIY_TABLE=bench_diy_history node --import tsx bench/lib/mqtt-diy-broker.ts
 *
 * Listens on 127.0.0.1 (port from BARE_MQTT_PORT, default 0 = any free port); on SIGTERM prints its batch
 * counts as one JSON line (`{"diy":{…}}`) and exits. The table (bench/lib/ingest-diy.ts creates it) has
 * device_id, identifier, ts, num, bool, str: a report `{"temperature":21.5,"switch":true}` of client `c` is
 * two rows; the device is the MQTT client id.
 */
import { Aedes } from 'aedes';
import postgres from 'postgres';
// A leaf (it imports nothing): the reference loads none of the server's code.
import { MQTT_DEFAULTS } from '../../mqtt-broker/core/defaults.ts';
import { serveAedes } from './aedes-serve.ts';

const port = Number(process.env.BARE_MQTT_PORT ?? 0);
const table = process.env.DIY_TABLE ?? '';
const databaseUrl = process.env.DATABASE_URL ?? '';
if (!/^[a-z_][a-z0-9_]*$/.test(table) || !databaseUrl) {
  console.error('diy broker: DATABASE_URL and DIY_TABLE (a plain table name) are required');
  process.exit(2);
}

const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
await sql`select 1 from ${sql(table)} limit 0`;

interface Pending {
  device: string;
  ts: number;
  values: Record<string, unknown>;
  done: (err: Error | null) => void;
}

let queue: Pending[] = [];
let writing = false;
const counts = { batches: 0, reports: 0, rows: 0, failedBatches: 0, maxReports: 0 };

/** One writer: everything queued goes in one INSERT; what arrives meanwhile waits for the next. */
async function write() {
  writing = true;
  while (queue.length) {
    const batch = queue;
    queue = [];
    const cols = { d: [] as string[], i: [] as string[], t: [] as number[], n: [] as (number | null)[] };
    const bools: (boolean | null)[] = [];
    const strs: (string | null)[] = [];
    for (const p of batch) {
      for (const [identifier, v] of Object.entries(p.values)) {
        cols.d.push(p.device);
        cols.i.push(identifier);
        cols.t.push(p.ts);
        cols.n.push(typeof v === 'number' ? v : null);
        bools.push(typeof v === 'boolean' ? v : null);
        strs.push(
          typeof v === 'number' || typeof v === 'boolean' ? null : typeof v === 'string' ? v : JSON.stringify(v),
        );
      }
    }
    try {
      // One statement text whatever the batch size (prepared once): arrays of the columns, unnested.
      await sql`
        insert into ${sql(table)} (device_id, identifier, ts, num, bool, str)
        select d, i, timestamptz 'epoch' + t * interval '1 millisecond', n, b, s
        from unnest(${cols.d}::text[], ${cols.i}::text[], ${cols.t}::int8[], ${cols.n}::float8[], ${bools}::bool[], ${strs}::text[])
          as r(d, i, t, n, b, s)`;
      counts.batches++;
      counts.reports += batch.length;
      counts.rows += cols.d.length;
      counts.maxReports = Math.max(counts.maxReports, batch.length);
      for (const p of batch) p.done(null);
    } catch (err) {
      counts.failedBatches++;
      console.error(`diy broker: insert failed: ${(err as Error).message}`);
      for (const p of batch) p.done(err as Error);
    }
  }
  writing = false;
}

const aedes = await Aedes.createBroker({
  maximumPacketSize: MQTT_DEFAULTS.maxPacketSize,
  drainTimeout: 30_000,
  connectTimeout: 30_000,
});
// Aedes writes a QoS 1 PUBACK once this callback ran: after the commit of the report's batch.
aedes.authorizePublish = (client, packet, callback) => {
  if (!client || packet.topic !== 'attributes') return callback(null);
  let values: unknown;
  try {
    values = JSON.parse(packet.payload.toString());
  } catch {
    values = undefined;
  }
  if (typeof values !== 'object' || values === null || Array.isArray(values))
    return callback(new Error('not a JSON object'));
  queue.push({ device: client.id, ts: Date.now(), values: values as Record<string, unknown>, done: callback });
  if (!writing) void write();
};
serveAedes(aedes, port, 'diy broker', async () => {
  console.log(JSON.stringify({ diy: counts }));
  await sql.end({ timeout: 5 });
});
