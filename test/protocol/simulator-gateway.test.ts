import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { run } from '../../simulator/commands/run.ts';
import { parseOptions, UsageError } from '../../simulator/options.ts';
import { createProject, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';
import { listenTestApp, startAppWithBroker, type TestBroker } from '../helpers/broker.ts';
import { sink, simTarget } from '../helpers/sim-output.ts';
import { waitForValue } from '../helpers/wait.ts';

/** `npm run sim -- --gateway`: one gateway connection carrying K sub-devices (device-protocol.md §8). */

// Runs wait for what the simulator must do (up to 30 s each on a loaded machine), not for a fixed time.
vi.setConfig({ testTimeout: 120_000 });
let ctx: TestContext;
let p: ProjectFixture;
let tb: TestBroker;
let mqttUrl: string;
let httpUrl: string;
let stop: (() => Promise<void>) | undefined;

beforeAll(async () => {
  ({ ctx, tb, close: stop } = await startAppWithBroker({ broker: { rateLimit: 100 } }));
  p = await createProject(ctx);
  mqttUrl = tb.url;
  httpUrl = await listenTestApp(ctx);
});
afterAll(() => stop?.());

const waitFor = <T>(probe: () => Promise<T | undefined>, timeout = 8_000) => waitForValue(probe, { timeout });

const byKey = async (key: string) =>
  expectOk(await p.api.get(`/api/v1/devices?device_key=${key}`)).items[0] as { id: string } | undefined;

describe('simulator --gateway', () => {
  it('attaches sub-devices through the API, reports them over one connection, and answers pushes and commands for them', async () => {
    const gatewayType = expectOk(
      await p.api.post('/api/v1/device_type', { name: 'sim gateway', conn_type: '3', allow_auto_create: true }),
    );
    const subType = expectOk(await p.api.post('/api/v1/device_type', { name: 'sim sensor', conn_type: '2' }));
    const args = [...simTarget(mqttUrl, httpUrl, p.project.project_key, gatewayType.type_key), '--devices', '2'];
    const parsed = parseOptions(
      [
        ...args,
        '--gateway',
        '--sub-devices',
        '3',
        '--api-token',
        p.appToken,
        '--sub-type',
        subType.id,
        '--qos',
        '1',
        '--rate',
        '5',
        '--duration',
        '60',
        '--prefix',
        'gw',
      ],
      {},
    );
    if (parsed.help) throw new Error('unexpected help');
    // Stopped once what it must do was seen, not after a fixed time (a loaded machine is slow).
    const stop = new AbortController();
    const running = run(parsed.options, sink(), { signal: stop.signal });

    // Once sub-device 2 of gateway 1 is online and has reported: a command and a push to it.
    const sub = await waitFor(async () => {
      const d = await byKey('gw-1-2');
      if (!d || !ctx.services.sessions.isOnline(d.id)) return undefined;
      return (await ctx.services.currentValues.get(p.project.id, d.id)).temperature !== undefined ? d : undefined;
    });
    const command = expectOk(
      await p.api.post(`/api/v1/control/device/${sub.id}/command`, { method: 'set', params: { switch: true } }),
    );
    const pushedAt = Date.now();
    expectOk(await p.api.post(`/api/v1/control/device/${sub.id}/attributes`, { label: 'north' }));
    await waitFor(
      async () =>
        expectOk(await p.api.get(`/api/v1/device/${sub.id}/commands`)).items[0]?.state === 'replied' ? true : undefined,
      30_000,
    );
    await waitFor(async () => {
      const series = expectOk(
        await p.api.get(
          `/api/v1/device/${sub.id}/attribute/label/series?start_time=${pushedAt}&end_time=${Date.now() + 1000}`,
        ),
      );
      return series.length ? true : undefined;
    }, 30_000);
    // Every sub-device of both gateways has reported.
    await waitFor(async () => {
      for (const n of [1, 2])
        for (const k of [1, 2, 3]) {
          const d = await byKey(`gw-${n}-${k}`);
          if (!d || (await ctx.services.currentValues.get(p.project.id, d.id)).temperature === undefined)
            return undefined;
        }
      return true;
    }, 30_000);
    stop.abort();

    const { summary, exitCode } = await running;
    expect(exitCode).toBe(0);
    expect(summary).toMatchObject({ devices: 2, connected_devices: 2, errors: 0, commands: 1, pushes: 1, gets: 6 });
    expect(summary.sent).toBeGreaterThanOrEqual(6);
    // Stopping cuts off the reports in flight at that moment; everything before was acknowledged.
    expect(summary.acked).toBeGreaterThan(0);
    expect(summary.acked).toBeLessThanOrEqual(summary.sent);

    for (const n of [1, 2]) {
      const gateway = (await byKey(`gw-${n}`))!;
      const subs = expectOk(await p.api.get(`/api/v1/device/${gateway.id}/sub_devices`)).items;
      expect(subs.map((s: { address: string }) => s.address)).toEqual(['1', '2', '3']);
      for (const s of subs)
        expect((await ctx.services.currentValues.get(p.project.id, s.id)).temperature).toEqual(expect.any(Number));
    }
    const log = expectOk(await p.api.get(`/api/v1/device/${sub.id}/commands`)).items[0];
    expect(log).toMatchObject({
      id: command.id,
      state: 'replied',
      reply: { method: 'set', params: { result: 'ok', switch: true } },
    });
    // The push was applied and reported back by the sub-device.
    expect(await ctx.services.currentValues.get(p.project.id, sub.id, ['label'])).toEqual({ label: 'north' });

    // A second run finds the sub-devices already attached and changes nothing.
    const again = parseOptions(
      [
        ...args,
        '--gateway',
        '--api-token',
        p.appToken,
        '--sub-type',
        subType.id,
        '--duration',
        '0.5',
        '--prefix',
        'gw',
      ],
      {},
    );
    if (again.help) throw new Error('unexpected help');
    expect((await run(again.options, sink())).summary.errors).toBe(0);
    expect(expectOk(await p.api.get(`/api/v1/devices?type=${subType.id}`)).total).toBe(6);
  });

  it('checks the gateway flags', () => {
    const base = ['--project-key', 'pk', '--type-key', 'tk'];
    expect(() => parseOptions([...base, '--sub-devices', '3'], {})).toThrow(UsageError);
    expect(() => parseOptions([...base, '--gateway', '--protocol', 'tcp'], {})).toThrow(UsageError);
    expect(() => parseOptions([...base, '--gateway', '--api-token', 't'], {})).toThrow(UsageError);
    expect(() =>
      parseOptions(['--project-key', 'pk', '--tokens', 'a', '--gateway', '--api-token', 't', '--sub-type', 's'], {}),
    ).toThrow(UsageError);
    expect(() => parseOptions([...base, '--gateway', '--sub-devices', '101'], {})).toThrow(UsageError);
    const parsed = parseOptions(base, { SIM_GATEWAY: '1', SIM_SUB_DEVICES: '5' });
    expect(!parsed.help && parsed.options).toMatchObject({ gateway: true, subDevices: 5 });
  });
});
