import http from 'node:http';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../simulator/cli.ts';
import { parseOptions, type SimOptions } from '../../simulator/options.ts';
import {
  MAX_PAUSE_MS,
  pauseAfterLimit,
  provisionAll,
  retryAfterMs,
  STALL_MS,
  UNREACHABLE_GIVE_UP,
} from '../../simulator/provision.ts';
import type { AddressInfo } from 'node:net';
import { Stats } from '../../simulator/stats.ts';
import { listenTestApp, startAppWithBroker, type TestBroker } from '../helpers/broker.ts';
import { client, createProject, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';
import { addDeviceType } from '../helpers/factories.ts';
import { sink, simTarget } from '../helpers/sim-output.ts';

/**
 * The simulator as a fleet behind one NAT: it honours the server's 429 + Retry-After on certificate requests, exits
 * non-zero with one clear line when fewer devices connected than asked, and its default device keys do not collide
 * between types (simulator/README.md).
 */
vi.setConfig({ testTimeout: 120_000 });
let ctx: TestContext;
let p: ProjectFixture;
let tb: TestBroker;
let httpUrl: string;
let stop: (() => Promise<void>) | undefined;

beforeAll(async () => {
  // A small allowance, so that ten devices meet it: 2 at once, then 2 a second.
  ({
    ctx,
    tb,
    close: stop,
  } = await startAppWithBroker({
    app: { PROVISION_BURST: 2, PROVISION_RATE: 2 },
    broker: { rateLimit: 100 },
  }));
  p = await createProject(ctx);
  httpUrl = await listenTestApp(ctx);
});
afterAll(() => stop?.());

function options(argv: string[]): SimOptions {
  const parsed = parseOptions(argv, {});
  if (parsed.help) throw new Error('unexpected help');
  return parsed.options;
}

const autoType = (f: ProjectFixture, body: Record<string, unknown> = {}) =>
  addDeviceType(f.api, { name: 'auto', allow_auto_create: true, ...body });

async function deviceKeys(f: ProjectFixture): Promise<string[]> {
  return (expectOk(await f.api.get('/api/v1/devices?page_records=200')).items as Array<{ device_key: string }>)
    .map((d) => d.device_key)
    .sort();
}

/** A certificate endpoint that answers 429 to the first `limited` requests, then certificates; it notes when each came. */
async function fakeCertificateServer(limited: number, retryAfter = '1') {
  const seen: Array<{ at: number; status: number }> = [];
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const status = seen.length < limited ? 429 : 200;
      seen.push({ at: Date.now(), status });
      res.writeHead(status, {
        'content-type': 'application/json',
        ...(status === 429 ? { 'retry-after': retryAfter } : {}),
      });
      res.end(
        JSON.stringify(
          status === 429
            ? { result: 0, errcode: 429, message: `Too many certificate requests, retry in ${retryAfter} s` }
            : {
                result: 1,
                device: { id: 'x', name: 'x', access_token: `t${seen.length}`, conn_type: '1' },
                message: 'ok',
              },
        ),
      );
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise((r) => server.close(r)),
  };
}

describe('provisioning behind one address', () => {
  it('waits as long as Retry-After says before asking again, and gets every certificate', async () => {
    // One device: each request comes at least Retry-After after the 429 before it.
    const one = await fakeCertificateServer(3);
    try {
      const out = sink();
      const stats = new Stats(1, out, true);
      const result = await provisionAll(
        options(['--project-key', 'pk', '--type-key', 'tk', '--devices', '1', '--http', one.url]),
        stats,
      );
      expect(result).toEqual({ ids: [{ index: 1, token: 't4' }], skipped: 0 });
      expect(stats.provisionWaits).toBe(3);
      expect(out.text()).toMatch(
        /the server limits certificate requests \(Too many certificate requests, retry in 1 s\); waiting as it asks/,
      );
      for (let i = 1; i < one.seen.length; i++)
        expect(one.seen[i]!.at - one.seen[i - 1]!.at).toBeGreaterThanOrEqual(1_000);
    } finally {
      await one.close();
    }
    // Six at once, all refused: nobody asks again before Retry-After has passed since the last refusal.
    const six = await fakeCertificateServer(6, '2');
    try {
      const stats = new Stats(6, sink(), true);
      const result = await provisionAll(
        options(['--project-key', 'pk', '--type-key', 'tk', '--devices', '6', '--http', six.url]),
        stats,
      );
      expect(result.ids.map((d) => d.index)).toEqual([1, 2, 3, 4, 5, 6]);
      const lastRefusal = Math.max(...six.seen.filter((s) => s.status === 429).map((s) => s.at));
      const after = six.seen.filter((s) => s.status === 200);
      expect(after).toHaveLength(6);
      for (const s of after) expect(s.at - lastRefusal).toBeGreaterThanOrEqual(2_000 - 50);
    } finally {
      await six.close();
    }
  });

  it('pauses with jitter, longer after refusals in a row, never beyond MAX_PAUSE_MS', () => {
    expect(pauseAfterLimit(1_000, 1, () => 0)).toBe(1_000);
    expect(pauseAfterLimit(1_000, 1, () => 1)).toBe(1_500);
    expect(pauseAfterLimit(1_000, 4, () => 0)).toBe(4_000);
    expect(pauseAfterLimit(20_000, 1, () => 1)).toBe(MAX_PAUSE_MS);
    // A longer wait than the back-off's bound is honoured as asked.
    expect(pauseAfterLimit(45_000, 1, () => 1)).toBe(45_000);
    expect(pauseAfterLimit(0, 100, () => 0.5)).toBe(MAX_PAUSE_MS);
    expect(retryAfterMs('2')).toBe(2_000);
    expect(retryAfterMs(null)).toBe(1_000);
    expect(retryAfterMs(new Date(10_000).toUTCString(), 4_000)).toBe(6_000);
  });

  it('gives up at once when the server asks for a longer wait than STALL_MS', async () => {
    const fake = await fakeCertificateServer(Number.POSITIVE_INFINITY, '3600');
    try {
      const stats = new Stats(3, sink(), true);
      const result = await provisionAll(
        options(['--project-key', 'pk', '--type-key', 'tk', '--devices', '3', '--http', fake.url]),
        stats,
      );
      expect(result).toEqual({ ids: [], skipped: 0 });
      expect(stats.lastError).toMatch(/gave up: the server asks to wait 3600 s/);
      expect(fake.seen.length).toBeLessThanOrEqual(3);
    } finally {
      await fake.close();
    }
  });

  it('gives up for the whole run within seconds when the server is down, and says where it looked', async () => {
    // 1,000 devices against a closed port: each tried 4 times in turn would be ~7 minutes of back-off.
    let slept = 0;
    let asked = 0;
    const out = sink();
    const stats = new Stats(1000, out, true);
    const result = await provisionAll(
      options(['--project-key', 'pk', '--type-key', 'tk', '--devices', '1000', '--http', 'http://127.0.0.1:9']),
      stats,
      undefined,
      {
        fetch: (async () => {
          asked++;
          throw Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
        }) as typeof fetch,
        sleep: async (ms) => void (slept += ms),
        random: () => 0,
      },
    );
    expect(result).toEqual({ ids: [], skipped: 0 });
    expect(asked).toBeLessThanOrEqual(UNREACHABLE_GIVE_UP + 8);
    // Wall time is about the back-off of one worker (8 work at once).
    expect(slept / 8).toBeLessThan(5_000);
    expect(stats.lastError).toMatch(
      /gave up: 8 certificate requests in a row got no answer from the API at http:\/\/127\.0\.0\.1:9 \(cannot reach .*ECONNREFUSED\); is the server running there\?/,
    );
    expect(out.text()).toMatch(/gave up: 8 certificate requests in a row/);
  });

  it('keeps going through server faults once certificates come: only the device that failed 4 times is short', async () => {
    let asked = 0;
    const stats = new Stats(20, sink(), true);
    const result = await provisionAll(
      options(['--project-key', 'pk', '--type-key', 'tk', '--devices', '20', '--http', 'http://127.0.0.1:9']),
      stats,
      undefined,
      {
        fetch: (async (_url: unknown, init?: RequestInit) => {
          asked++;
          const key = (JSON.parse(String(init?.body)) as { device_key: string }).device_key;
          // The first device answers; later, one device meets 502s (more than UNREACHABLE_GIVE_UP in a row overall).
          if (key.endsWith('-13')) return new Response('bad gateway', { status: 502 });
          if (asked > 2 && asked < 12) return new Response('bad gateway', { status: 502 });
          return Response.json({
            result: 1,
            device: { id: key, name: key, access_token: `t-${key}`, conn_type: '1' },
            message: 'ok',
          });
        }) as typeof fetch,
        sleep: async () => {},
        random: () => 0,
      },
    );
    expect(result.ids.length).toBe(19);
    expect(stats.lastError).toMatch(/-13: HTTP 502 \(4 tries\)/);
  });

  it('gives up after STALL_MS without a certificate, and says so', async () => {
    const fake = await fakeCertificateServer(Number.POSITIVE_INFINITY);
    try {
      // A virtual clock: every wait moves it on at once.
      let now = 0;
      const out = sink();
      const stats = new Stats(4, out, true);
      const result = await provisionAll(
        options(['--project-key', 'pk', '--type-key', 'tk', '--devices', '4', '--http', fake.url]),
        stats,
        undefined,
        {
          now: () => now,
          sleep: async (ms) => {
            now += ms;
          },
        },
      );
      expect(result).toEqual({ ids: [], skipped: 0 });
      expect(stats.lastError).toMatch(/gave up: the server refused certificate requests for 120 s/);
      expect(out.text()).toMatch(/gave up/);
      // Bounded: about one round of four requests per pause, not a busy loop.
      expect(fake.seen.length).toBeLessThan(4 * (STALL_MS / 500));
    } finally {
      await fake.close();
    }
  });

  it('provisions ten devices through an allowance of two at once and two a second, and all connect', async () => {
    const type = await autoType(p);
    const out = sink();
    const err = sink();
    const code = await main(
      [
        ...simTarget(tb.url, httpUrl, p.project.project_key, type.type_key),
        '--devices',
        '10',
        '--duration',
        '2',
        '--quiet',
      ],
      { out, err },
      {},
    );
    expect(err.text()).toBe('');
    expect(code).toBe(0);
    expect(out.text()).toMatch(/provisioned 10 \(waited \d+ times for the server's limit\)\s+connected 10/);
    const prefix = `sim-${type.type_key.slice(0, 8)}`;
    expect(await deviceKeys(p)).toEqual(Array.from({ length: 10 }, (_, i) => `${prefix}-${i + 1}`).sort());
  });
});

describe('fewer devices connected than asked', () => {
  it('exits 1 with one line saying how many connected and why, when the device quota stops provisioning', async () => {
    const project = await ctx.services.projects.create({ name: 'small', device_quota: 2 });
    const login = await ctx.app.inject({ method: 'POST', url: '/api/v1/access_token', payload: project.app });
    const api = client(ctx.app, login.json().info.access_token);
    const type = expectOk(await api.post('/api/v1/device_type', { name: 'auto', allow_auto_create: true })) as {
      type_key: string;
    };
    const out = sink();
    const err = sink();
    const code = await main(
      [
        ...simTarget(tb.url, httpUrl, project.project_key, type.type_key),
        '--devices',
        '3',
        '--duration',
        '2',
        '--quiet',
      ],
      { out, err },
      {},
    );
    expect(code).toBe(1);
    expect(err.text()).toMatch(
      /^sim: only 2 of 3 devices connected; 1 not provisioned; last error: certificate of sim-\w+-[123]: The project has reached its device quota \(2\)\n$/,
    );
    expect(out.text()).toMatch(/SHORT: 1 of 3 devices never connected/);
  });

  it('exits 1 when a given token is refused while the others connect', async () => {
    const type = await autoType(p);
    const good = await provisionAll(
      options([
        '--project-key',
        p.project.project_key,
        '--type-key',
        type.type_key,
        '--prefix',
        'tok',
        '--devices',
        '1',
        '--http',
        httpUrl,
      ]),
      new Stats(1, sink(), true),
    );
    const out = sink();
    const err = sink();
    const code = await main(
      [
        '--host',
        tb.url,
        '--project-key',
        p.project.project_key,
        '--tokens',
        `${good.ids[0]!.token},no-such-token`,
        '--duration',
        '3',
        '--quiet',
      ],
      { out, err },
      {},
    );
    expect(code).toBe(1);
    expect(err.text()).toMatch(/^sim: only 1 of 2 devices connected; last error: .*refused/);
  });

  it('exits 0 when stopped (Ctrl-C) during the ramp-up: devices not started yet are not missing', async () => {
    const type = await autoType(p);
    const out = sink();
    const err = sink();
    const stop = new AbortController();
    const running = main(
      [
        ...simTarget(tb.url, httpUrl, p.project.project_key, type.type_key),
        '--prefix',
        'ramp',
        '--devices',
        '3',
        '--ramp-up',
        '600',
        '--rate',
        '20',
        '--quiet',
      ],
      { out, err, signal: stop.signal },
      {},
    );
    // The first device starts at once, the next ones every 200 s: stop once the first has reported (it is connected).
    await expect
      .poll(
        async () => {
          const items = expectOk(await p.api.get('/api/v1/devices?device_key=ramp-1')).items as Array<{ id: string }>;
          return items[0]
            ? (await ctx.services.currentValues.get(p.project.id, items[0].id)).temperature !== undefined
            : false;
        },
        { timeout: 30_000 },
      )
      .toBe(true);
    stop.abort();
    expect(await running).toBe(0);
    expect(out.text()).toMatch(/not started \(stopped first\): 2/);
    expect(err.text()).toBe('');
  });
});

describe('default device keys', () => {
  it('differ between types, and a clash with another kind of device is named in the output', async () => {
    const direct = await autoType(p, { name: 'thermo' });
    const gateway = await autoType(p, { name: 'gw', conn_type: '3' });
    const run = async (argv: string[]) => {
      const out = sink();
      const err = sink();
      const code = await main(
        [
          '--host',
          tb.url,
          '--http',
          httpUrl,
          '--project-key',
          p.project.project_key,
          '--duration',
          '1',
          '--quiet',
          ...argv,
        ],
        { out, err },
        {},
      );
      return { code, out: out.text(), err: err.text() };
    };
    const first = await run(['--type-key', direct.type_key, '--devices', '2']);
    expect(first.code).toBe(0);
    // The gateway example after the direct one: its own devices, and they connect.
    const second = await run(['--type-key', gateway.type_key, '--devices', '2', '--gateway', '--sub-devices', '1']);
    expect(second.out).toMatch(/connected 2 /);
    const keys = await deviceKeys(p);
    for (const tk of [direct.type_key, gateway.type_key])
      for (const n of [1, 2]) expect(keys).toContain(`sim-${tk.slice(0, 8)}-${n}`);

    // With the direct run's prefix given on purpose, the answer says what is wrong, printed as it happens.
    const clash = await run([
      '--type-key',
      gateway.type_key,
      '--devices',
      '2',
      '--gateway',
      '--prefix',
      `sim-${direct.type_key.slice(0, 8)}`,
    ]);
    expect(clash.code).toBe(1);
    // Both devices are asked for at once: either may be refused first (and last).
    const said =
      /certificate of sim-\w+-([12]): Device key "sim-\w+-\1" is already used by a directly connected device of type "thermo", but type_key names type "gw", which is for gateways/;
    expect(clash.out).toMatch(said);
    expect(clash.err).toMatch(
      /^sim: no device could connect \(0 of 2\); 2 not provisioned; last error: certificate of sim-\w+-[12]: Device key .* already used/,
    );

    // --gateway with a type that is not a gateway type: said once, and provisioning stops there.
    const notGateway = await run(['--type-key', direct.type_key, '--devices', '2', '--gateway', '--prefix', 'notgw']);
    expect(notGateway.code).toBe(1);
    expect(notGateway.out).toMatch(
      /is not a gateway type \(conn_type "1", a gateway is "3"\): --gateway needs a gateway type's key/,
    );
  });
});
