import net, { type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { rowsOf } from '../../src/db/client.ts';
import { run } from '../../simulator/commands/run.ts';
import { parseOptions } from '../../simulator/options.ts';
import { createProject, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';
import { listenTestApp, startAppWithBroker, startTestBroker, type TestBroker } from '../helpers/broker.ts';
import { closedPort } from '../helpers/process.ts';
import { sink, simTarget } from '../helpers/sim-output.ts';
import { waitForValue } from '../helpers/wait.ts';

/**
 * `--host a,b` (simulator/hosts.ts): two brokers over one set of services stand for two cluster nodes. The first
 * is reached through a relay that first goes silent towards the devices (reports are stored, their PUBACKs never
 * arrive) and then drops every link: the devices move on to the second, send the unacknowledged reports again
 * there, and every report the simulator counted as acknowledged is in the history.
 */
vi.setConfig({ testTimeout: 120_000 });
let ctx: TestContext;
let p: ProjectFixture;
let first: TestBroker;
let second: TestBroker;
let tcpUrl: string;
let httpUrl: string;
let stopApp: (() => Promise<void>) | undefined;

/** A TCP relay to `port`; `silence()` stops what the broker says from reaching the devices, `cut()` ends it all. */
async function relayTo(port: number) {
  const sockets = new Set<net.Socket>();
  let silent = false;
  const server = net.createServer((device) => {
    const broker = net.connect(port, '127.0.0.1');
    sockets.add(device).add(broker);
    device.on('data', (chunk) => broker.write(chunk));
    broker.on('data', (chunk) => {
      if (!silent) device.write(chunk);
    });
    for (const [a, b] of [
      [device, broker],
      [broker, device],
    ] as const) {
      a.on('error', () => b.destroy());
      a.on('close', () => {
        sockets.delete(a);
        b.destroy();
      });
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`,
    silence: () => void (silent = true),
    cut: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

beforeAll(async () => {
  let tcpPort: number;
  ({
    ctx,
    tb: first,
    tcpPort,
    close: stopApp,
  } = await startAppWithBroker({ broker: { rateLimit: 100 }, tcp: { frameGapMs: 20, rateLimit: 100 } }));
  second = await startTestBroker(ctx, { rateLimit: 100 });
  tcpUrl = `tcp://127.0.0.1:${tcpPort}`;
  p = await createProject(ctx);
  httpUrl = await listenTestApp(ctx);
});
afterAll(async () => {
  await second?.close();
  await stopApp?.();
});

async function storedReports(deviceIds: string[]): Promise<number> {
  const rows = rowsOf<{ n: number }>(
    await ctx.database.db.execute(
      sql`select count(*)::int as n from attribute_history where identifier = 'temperature' and device_id in ${deviceIds}`,
    ),
  );
  return rows[0]?.n ?? 0;
}

async function reportingDevices(deviceIds: string[]): Promise<number> {
  const rows = rowsOf<{ n: number }>(
    await ctx.database.db.execute(
      sql`select count(distinct device_id)::int as n from attribute_history where device_id in ${deviceIds}`,
    ),
  );
  return rows[0]?.n ?? 0;
}

describe('simulator with several hosts', () => {
  it('moves to the next host on a lost connection and sends unacknowledged QoS 1 reports again there', async () => {
    const relay = await relayTo(first.port);
    const type = expectOk(await p.api.post('/api/v1/device_type', { name: 'failover', allow_auto_create: true }));
    const parsed = parseOptions(
      [
        ...simTarget(`${relay.url},${second.url}`, httpUrl, p.project.project_key, type.type_key),
        '--devices',
        '3',
        '--qos',
        '1',
        '--rate',
        '10',
        '--duration',
        '100',
        '--prefix',
        'failover',
        '--quiet',
      ],
      {},
    );
    if (parsed.help) throw new Error('unexpected help');
    expect(parsed.options.host).toBe(`${relay.url},${second.url}`);
    const stop = new AbortController();
    const running = run(parsed.options, sink(), { signal: stop.signal });

    const online = async () => {
      const items = expectOk(await p.api.get('/api/v1/devices?page_records=10')).items as Array<{ id: string }>;
      return items.length === 3 && items.every((d) => ctx.services.sessions.isOnline(d.id))
        ? items.map((d) => d.id)
        : undefined;
    };
    const ids = await waitForValue(online, { timeout: 30_000 });
    await waitForValue(async () => ((await storedReports(ids)) >= 6 ? true : undefined), { timeout: 30_000 });

    // The first host goes silent: reports still reach it and are stored, no PUBACK comes back.
    relay.silence();
    const beforeSilence = await storedReports(ids);
    await waitForValue(async () => ((await storedReports(ids)) >= beforeSilence + 6 ? true : undefined), {
      timeout: 30_000,
    });
    // Then its links drop and it is gone: the devices find the second host.
    await relay.cut();
    const afterCut = await storedReports(ids);
    await waitForValue(async () => ((await online()) ? true : undefined), { timeout: 30_000 });
    await waitForValue(async () => ((await storedReports(ids)) >= afterCut + 15 ? true : undefined), {
      timeout: 30_000,
    });
    stop.abort();
    const { summary, exitCode } = await running;

    expect(exitCode).toBe(0);
    expect(summary.failovers).toBeGreaterThanOrEqual(3);
    expect(summary.sent).toBeGreaterThan(0);
    // The reports the silent host never acknowledged were sent again on the second and acknowledged there.
    expect(summary.puback).toBe(summary.sent);
    // Every acknowledged report is stored (the ones stored by the silent host are there twice: at least once).
    expect(await storedReports(ids)).toBeGreaterThanOrEqual(summary.puback);
  });

  it('connects to the first host of the list that answers, over MQTT and raw TCP', async () => {
    const closed = await closedPort();
    for (const [protocol, host, connType] of [
      ['mqtt', `mqtt://127.0.0.1:${closed},${second.url}`, 'mqtt'],
      ['tcp', `tcp://127.0.0.1:${closed},${tcpUrl}`, 'tcp'],
    ] as const) {
      const type = expectOk(
        await p.api.post('/api/v1/device_type', {
          name: `first answering ${protocol}`,
          ...(connType === 'tcp' ? { conn_protocol: 'tcp' } : {}),
          allow_auto_create: true,
        }),
      );
      const prefix = `first-${protocol}`;
      const parsed = parseOptions(
        [
          ...['--protocol', protocol],
          ...simTarget(host, httpUrl, p.project.project_key, type.type_key),
          ...['--devices', '2', '--rate', '5', '--duration', '100'],
          ...['--prefix', prefix, '--quiet'],
        ],
        {},
      );
      if (parsed.help) throw new Error('unexpected help');
      const stop = new AbortController();
      const running = run(parsed.options, sink(), { signal: stop.signal });
      await waitForValue(
        async () => {
          const items = expectOk(await p.api.get('/api/v1/devices?page_records=100')).items as Array<{
            id: string;
            device_key: string;
          }>;
          const mine = items.filter((d) => d.device_key.startsWith(`${prefix}-`));
          if (mine.length !== 2 || !mine.every((d) => ctx.services.sessions.isOnline(d.id))) return undefined;
          // Over MQTT the server has the session before the device has its CONNACK: a report stored means the
          // device saw its connection accepted (it reports only then). A raw TCP device counts at connect.
          return protocol === 'tcp' || (await reportingDevices(mine.map((d) => d.id))) === 2 ? true : undefined;
        },
        { timeout: 30_000 },
      );
      stop.abort();
      const { summary, exitCode } = await running;
      expect(exitCode, protocol).toBe(0);
      expect(summary.connected_devices, protocol).toBe(2);
      // The refused first host was an error, not a failover: no connection had been accepted before.
      expect(summary.errors, protocol).toBeGreaterThanOrEqual(2);
      expect(summary.failovers, protocol).toBe(0);
    }
  });

  it('refuses a list mixing schemes or naming no url, naming the flag', () => {
    const base = ['--project-key', 'pk', '--tokens', 't1'];
    expect(() => parseOptions(['--host', 'mqtt://a:1883,ws://b:8080/mqtt', ...base], {})).toThrow(
      /--host: all urls of a list use the same scheme/,
    );
    expect(() => parseOptions(['--host', 'mqtt://a:1883,nonsense', ...base], {})).toThrow(/--host: .*not nonsense/);
    expect(() => parseOptions(['--host', ',', ...base], {})).toThrow(/--host: no url given/);
    const ok = parseOptions(['--host', ' mqtt://a:1883, mqtt://b:1884,', ...base], {});
    expect(ok.help === false && ok.options.host).toBe('mqtt://a:1883,mqtt://b:1884');
  });
});
