import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../simulator/cli.ts';
import { run } from '../../simulator/commands/run.ts';
import { parseOptions } from '../../simulator/options.ts';
import { frameOf } from '../../simulator/tcp-device.ts';
import { createProject, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';
import { listenTestApp, startAppWithBroker } from '../helpers/broker.ts';
import { sink, simTarget } from '../helpers/sim-output.ts';
import { waitForValue } from '../helpers/wait.ts';

/** The simulator's raw TCP devices (`--protocol tcp`) against a real listener and HTTP server. */

// Runs wait for what the simulator must do (up to 30 s each on a loaded machine), not for a fixed time.
vi.setConfig({ testTimeout: 120_000 });
let ctx: TestContext;
let p: ProjectFixture;
let tcpPort: number;
let stop: (() => Promise<void>) | undefined;
let tcpUrl: string;
let httpUrl: string;

beforeAll(async () => {
  ({ ctx, tcpPort, close: stop } = await startAppWithBroker({ tcp: { frameGapMs: 20, rateLimit: 100 } }));
  p = await createProject(ctx);
  tcpUrl = `tcp://127.0.0.1:${tcpPort}`;
  httpUrl = await listenTestApp(ctx);
});

afterAll(() => stop?.());

const waitFor = <T>(probe: () => Promise<T | undefined>, timeout = 8_000) => waitForValue(probe, { timeout });

/** Starts a run that goes on until `stop()` (a fixed duration would race a loaded machine). */
function startRun(format: string, typeKey: string, prefix: string, extra: string[] = []) {
  const parsed = parseOptions(
    [
      '--protocol',
      'tcp',
      '--tcp-format',
      format,
      ...simTarget(tcpUrl, httpUrl, p.project.project_key, typeKey),
      '--devices',
      '2',
      '--rate',
      '5',
      '--duration',
      '60',
      '--prefix',
      prefix,
      '--quiet',
      ...extra,
    ],
    {},
  );
  if (parsed.help) throw new Error('unexpected help');
  const controller = new AbortController();
  const running = run(parsed.options, sink(), { signal: controller.signal });
  return { running, stop: () => (controller.abort(), running) };
}

/** The first device of the run once it is online, with its recorded upstream messages. */
async function onlineDevice(prefix: string, identifier: string) {
  return waitFor(async () => {
    const d = expectOk(await p.api.get(`/api/v1/devices?device_key=${prefix}-1`)).items[0] as
      { id: string } | undefined;
    if (!d || !ctx.services.sessions.isOnline(d.id)) return undefined;
    await ctx.services.dataStreams.flush();
    const items = expectOk(await p.api.get(`/api/v1/device/${d.id}/data/${identifier}/messages`)).items as Array<{
      direction: string;
      hex: string;
      data: string;
    }>;
    return items.some((m) => m.direction === 'up') ? { id: d.id, items } : undefined;
  });
}

describe('simulator --protocol tcp', () => {
  it('json frames map into attributes, and a pushed JSON object is applied and sent back', async () => {
    const type = expectOk(
      await p.api.post('/api/v1/device_type', { name: 'dtu json', conn_protocol: 'tcp', allow_auto_create: true }),
    );
    expectOk(
      await p.api.post(`/api/v1/device_type/${type.id}/data_stream`, {
        identifier: 'telemetry',
        format: 'json',
        tcp_bound: true,
        map_to_attributes: true,
      }),
    );
    const sim = startRun('json', type.type_key, 'tcpjson');
    const d = await onlineDevice('tcpjson', 'telemetry');
    expect(Object.keys(JSON.parse(d.items[0]!.data))).toEqual(['temperature', 'humidity', 'switch', 'location']);
    expectOk(
      await p.api.post(`/api/v1/control/device/${d.id}/data/telemetry/set?push_mode=tcp`, {
        type: 'json',
        msg: { switch: true, mode: 'eco' },
      }),
    );
    // The pushed object is applied and reported back (mapped into attributes) by the device.
    await waitFor(
      async () => ((await ctx.services.currentValues.get(p.project.id, d.id)).mode === 'eco' ? true : undefined),
      30_000,
    );
    await waitFor(
      async () => (expectOk(await p.api.get('/api/v1/devices?device_key=tcpjson-2')).items[0] ? true : undefined),
      30_000,
    );
    const { summary, exitCode } = await sim.stop();
    expect(exitCode).toBe(0);
    expect(summary).toMatchObject({ devices: 2, provisioned: 2, connected_devices: 2, errors: 0, pushes: 1 });
    // Each device sent at least its first frame (the run stops as soon as the push was seen).
    expect(summary.sent).toBeGreaterThanOrEqual(2);
    const values = await ctx.services.currentValues.get(p.project.id, d.id);
    expect(values).toMatchObject({
      switch: true,
      mode: 'eco',
      temperature: expect.any(Number),
      location: { lat: expect.any(Number), lng: expect.any(Number) },
    });
  });

  it('hex frames are recorded byte-exact, and pushed bytes are echoed back', async () => {
    const type = expectOk(
      await p.api.post('/api/v1/device_type', { name: 'dtu hex', conn_protocol: 'tcp', allow_auto_create: true }),
    );
    const sim = startRun('hex', type.type_key, 'tcphex', ['--tcp-heartbeat', 'HB']);
    const d = await onlineDevice('tcphex', 'stream');
    const first = Buffer.from(d.items[0]!.hex, 'hex');
    expect(first).toHaveLength(8);
    expect(first.subarray(0, 2).toString('hex')).toBe('aa01');
    expect(first[7]).toBe(first.subarray(0, 7).reduce((s, x) => (s + x) & 0xff, 0));
    // The device echoes pushed bytes: the echo is stored (the event comes after the write) before the run stops.
    // Gap framing may join the echo with a report sent within the gap on a slow machine: contained, not equal.
    const echoed = new Promise<void>((resolve) => {
      const off = ctx.services.bus.on('device.data', (e) => {
        if (e.deviceId === d.id && e.direction === 'up' && e.payload.toString('hex').includes('deadbeef'))
          resolve(off());
      });
    });
    expectOk(
      await p.api.post(`/api/v1/control/device/${d.id}/data/stream/set?push_mode=tcp`, {
        type: 'hex',
        msg: 'de ad be ef',
      }),
    );
    await echoed;
    const { summary } = await sim.stop();
    expect(summary.pushes).toBe(1);
    await ctx.services.dataStreams.flush();
    const items = expectOk(await p.api.get(`/api/v1/device/${d.id}/data/stream/messages?page_records=100`))
      .items as Array<{ direction: string; hex: string }>;
    expect(items.filter((m) => m.direction === 'down').map((m) => m.hex)).toEqual(['deadbeef']);
    expect(items.some((m) => m.direction === 'up' && m.hex.includes('deadbeef'))).toBe(true);
  });

  it('builds the documented frames', () => {
    const v = { temperature: 21.5, humidity: 40.2, switch: true, location: { lat: 1, lng: 2 } };
    expect(frameOf('text', v).toString()).toBe('T=21.5;H=40.2;S=1');
    // 21.5 °C → 215 = 00d7, 40.2 % → 402 = 0192, switch 01, (aa+01+00+d7+01+92+01) & ff = 16.
    expect(frameOf('hex', v).toString('hex')).toBe('aa0100d701920116');
    expect(JSON.parse(frameOf('json', v).toString())).toEqual(v);
  });

  it('documents the TCP flags, and refuses a non-tcp host or an unknown format', async () => {
    const out = sink();
    expect(await main(['--help'], { out, err: sink() }, {})).toBe(0);
    for (const flag of ['--protocol mqtt|ws|tcp', '--tcp-format', '--tcp-heartbeat'])
      expect(out.text()).toContain(flag);
    for (const argv of [
      ['--project-key', 'pk', '--tokens', 't', '--protocol', 'tcp', '--host', 'mqtt://127.0.0.1:1883'],
      ['--project-key', 'pk', '--tokens', 't', '--protocol', 'tcp', '--tcp-format', 'xml'],
    ]) {
      const err = sink();
      expect(await main(argv, { out: sink(), err }, {})).toBe(2);
      expect(err.text()).toMatch(/^sim: --(host|tcp-format)/);
    }
    const parsed = parseOptions(['--project-key', 'pk', '--tokens', 't', '--protocol', 'tcp'], {});
    expect(parsed.help === false && parsed.options.host).toBe('tcp://127.0.0.1:28801');
  });
});
