import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { attributeValues } from '../../src/db/schema/index.ts';
import { main } from '../../simulator/cli.ts';
import { run } from '../../simulator/commands/run.ts';
import { parseOptions } from '../../simulator/options.ts';
import { client, createProject, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';
import { listenTestApp, startAppWithBroker, type TestBroker } from '../helpers/broker.ts';
import { sink, simTarget } from '../helpers/sim-output.ts';
import { waitForValue } from '../helpers/wait.ts';

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

const waitFor = <T>(probe: () => Promise<T | undefined>, timeout = 5_000) => waitForValue(probe, { timeout });

describe('device simulator run', () => {
  it('provisions, reports, answers commands and pushes, and sums up the run', async () => {
    const type = expectOk(await p.api.post('/api/v1/device_type', { name: 'sim type', allow_auto_create: true }));
    const parsed = parseOptions(
      [
        ...simTarget(mqttUrl, httpUrl, p.project.project_key, type.type_key),
        '--devices',
        '3',
        '--qos',
        '1',
        '--rate',
        '5',
        '--duration',
        '60',
        '--prefix',
        'simtest',
      ],
      {},
    );
    if (parsed.help) throw new Error('unexpected help');
    const out = sink();
    // The run is stopped once what it must do was seen, not after a fixed time (a loaded machine is slow).
    const stop = new AbortController();
    const running = run(parsed.options, out, { signal: stop.signal });

    // While it runs: once the first device has reported (so it has subscribed), a command and a push to it.
    const anon = client(ctx.app);
    const listed = await waitFor(async () => {
      const page = expectOk(await p.api.get('/api/v1/devices?device_key=simtest-1'));
      const d = page.items[0] as { id: string } | undefined;
      if (!d || !ctx.services.sessions.isOnline(d.id)) return undefined;
      const cert = expectOk(await p.api.get(`/api/v1/device/${d.id}/certificate`));
      const current = await anon.call('GET', `/device/v1/${cert.access_token}/attributes`, undefined, {
        'project-key': p.project.project_key,
      });
      return current.body.attributes?.temperature !== undefined
        ? { id: d.id, token: cert.access_token as string }
        : undefined;
    });
    expectOk(
      await p.api.post(`/api/v1/control/device/${listed.id}/command`, { method: 'restart', params: { delay: 1 } }),
    );
    const pushedAt = Date.now();
    expectOk(await p.api.post(`/api/v1/control/device/${listed.id}/attributes`, { switch: true }));
    // The command was answered, and the pushed value was applied and reported back.
    await waitFor(
      async () =>
        expectOk(await p.api.get(`/api/v1/device/${listed.id}/commands`)).items[0]?.state === 'replied'
          ? true
          : undefined,
      30_000,
    );
    await waitFor(async () => {
      const series = expectOk(
        await p.api.get(
          `/api/v1/device/${listed.id}/attribute/switch/series?start_time=${pushedAt}&end_time=${Date.now() + 1000}`,
        ),
      );
      return series.some((x: { value: boolean }) => x.value === true) ? true : undefined;
    }, 30_000);
    stop.abort();

    const { summary, exitCode } = await running;
    expect(exitCode).toBe(0);
    expect(summary.devices).toBe(3);
    expect(summary.provisioned).toBe(3);
    expect(summary.connected_devices).toBe(3);
    expect(summary.sent).toBeGreaterThan(0);
    expect(summary.acked).toBeGreaterThan(0);
    expect(summary.errors).toBe(0);
    expect(summary.commands).toBe(1);
    expect(summary.pushes).toBe(1);
    expect(summary.gets).toBeGreaterThanOrEqual(3);
    expect(summary.latency_p50_ms).not.toBeNull();
    expect(out.text()).toContain('reports sent');

    const keys = expectOk(await p.api.get('/api/v1/devices?page_records=100'))
      .items.map((d: { device_key: string }) => d.device_key)
      .sort();
    expect(keys).toEqual(['simtest-1', 'simtest-2', 'simtest-3']);

    const commands = expectOk(await p.api.get(`/api/v1/device/${listed.id}/commands`));
    expect(commands.items[0]).toMatchObject({
      method: 'restart',
      state: 'replied',
      reply: { method: 'restart', params: { result: 'ok' } },
    });

    const current = await anon.call('GET', `/device/v1/${listed.token}/attributes`, undefined, {
      'project-key': p.project.project_key,
    });
    expect(current.body.result).toBe(1);
    const attrs = current.body.attributes;
    expect(attrs.temperature).toBeGreaterThanOrEqual(18);
    expect(attrs.temperature).toBeLessThanOrEqual(30);
    expect(attrs.humidity).toBeGreaterThanOrEqual(30);
    expect(attrs.humidity).toBeLessThanOrEqual(70);
    expect(attrs.location).toEqual({ lat: expect.any(Number), lng: expect.any(Number) });
    expect(attrs.switch).toBe(true);

    await ctx.services.currentCache.flush();
    const [row] = await ctx.database.db
      .select({ attrType: attributeValues.attrType })
      .from(attributeValues)
      .where(and(eq(attributeValues.deviceId, listed.id), eq(attributeValues.identifier, 'switch')));
    expect(row?.attrType).toBe('report');
  });

  it('exits with 1 when no device could connect', async () => {
    const out = sink();
    const err = sink();
    const code = await main(
      [
        '--host',
        mqttUrl,
        '--project-key',
        p.project.project_key,
        '--tokens',
        'no-such-token',
        '--duration',
        '5',
        '--quiet',
      ],
      { out, err },
      {},
    );
    expect(code).toBe(1);
    expect(err.text()).toContain('no device could connect');
    expect(out.text()).toContain('errors 1');
  });
});

describe('device simulator flags', () => {
  it('exits with 2 on bad flags, naming the flag', async () => {
    for (const argv of [
      ['--bogus'],
      ['--project-key', 'pk', '--type-key', 'tk', '--qos', '2'],
      ['--project-key', 'pk', '--type-key', 'tk', '--rate', 'fast'],
      ['--project-key', 'pk', '--type-key', 'tk', '--protocol', 'coap'],
      ['--project-key', 'pk'],
      ['--type-key', 'tk'],
    ]) {
      const out = sink();
      const err = sink();
      expect(await main(argv, { out, err }, {})).toBe(2);
      expect(err.text()).toMatch(/^sim: /);
    }
  });

  it('takes a flag over its environment variable over the default', () => {
    const parsed = parseOptions(['--rate', '2'], {
      SIM_PROJECT_KEY: 'pk',
      SIM_TOKENS: 'a,b,c',
      SIM_RATE: '7',
      SIM_QOS: '1',
    });
    if (parsed.help) throw new Error('unexpected help');
    expect(parsed.options).toMatchObject({
      projectKey: 'pk',
      tokens: ['a', 'b', 'c'],
      devices: 3,
      rate: 2,
      qos: 1,
      host: 'mqtt://127.0.0.1:1883',
      duration: 0,
    });
  });

  it('documents every option in --help', async () => {
    const out = sink();
    expect(await main(['--help'], { out, err: sink() }, {})).toBe(0);
    for (const flag of [
      '--host',
      '--http',
      '--project-key',
      '--type-key',
      '--tokens',
      '--devices',
      '--rate',
      '--qos',
      '--duration',
      '--ramp-up',
      '--protocol',
      '--mqtt-version',
      '--prefix',
      '--quiet',
      '--help',
    ]) {
      expect(out.text()).toContain(flag);
    }
  });
});
