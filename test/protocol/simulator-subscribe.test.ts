import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../simulator/cli.ts';
import { formatMessage, parseSubscribeOptions } from '../../simulator/commands/subscribe.ts';
import { startAppWithBroker, type TestBroker } from '../helpers/broker.ts';
import { createProject, deviceWithToken, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';
import { sink } from '../helpers/sim-output.ts';

/** `npm run sim -- subscribe`: a project's live stream printed as an application sees it. */
let ctx: TestContext;
let p: ProjectFixture;
let tb: TestBroker;
let stop: (() => Promise<void>) | undefined;
beforeAll(async () => {
  ({ ctx, tb, close: stop } = await startAppWithBroker());
  p = await createProject(ctx);
});
afterAll(() => stop?.());

describe('sim subscribe', () => {
  it('prints the project’s attributes and events until the count is reached', async () => {
    const view = expectOk(await p.api.post('/api/v1/view_key', {}));
    const d = expectOk(await p.api.post('/api/v1/device', { name: 'boiler' }));
    const cert = expectOk(await p.api.get(`/api/v1/device/${d.id}/certificate`));
    const identity = (await ctx.services.deviceAuth.authenticate(p.project.project_key, cert.access_token))!;
    const out = sink();
    const err = sink();
    const done = main(
      [
        'subscribe',
        '--host',
        tb.url,
        '--view-key',
        view.view_key,
        '--view-secret',
        view.view_secret,
        '--kinds',
        'attributes,event',
        '--count',
        '2',
      ],
      { out, err },
    );
    await expect.poll(() => err.text()).toMatch(/following/);
    await ctx.services.currentValues.report(identity, { temperature: 61.5 });
    await ctx.services.deviceEvents.report(identity, { method: 'overheat', params: { zone: 2 } });
    expect(await done).toBe(0);
    const lines = out.text().trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(
      new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} boiler \\(${d.id}\\) attributes \\{"temperature":61.5\\}$`),
    );
    expect(lines[1]).toMatch(/boiler .* event overheat \{"zone":2\}$/);
  });

  it('prints JSON lines with --json and fails clearly on bad credentials or flags', async () => {
    const view = expectOk(await p.api.post('/api/v1/view_key', {}));
    const out = sink();
    const err = sink();
    expect(
      await main(['subscribe', '--host', tb.url, '--view-key', view.view_key, '--view-secret', 'wrong'], { out, err }),
    ).toBe(1);
    expect(err.text()).toMatch(/cannot connect/);
    expect(await main(['subscribe', '--view-key', 'k'], { out, err })).toBe(2);
    expect(await main(['subscribe', '--view-key', 'k', '--view-secret', 's', '--kinds', 'secrets'], { out, err })).toBe(
      2,
    );
    expect(parseSubscribeOptions(['--view-key', 'k', '--view-secret', 's', '--device', 'tok'], {})).toMatchObject({
      device: 'tok',
      kinds: ['attributes', 'event', 'command_reply', 'online', 'alarm', 'data'],
    });
    expect(formatMessage('k/t/online', { device: { id: 'i', name: 'n' }, online: false, ts: 0 })).toBe(
      '00:00:00.000 n (i) online offline',
    );
    const help = sink();
    expect(await main(['subscribe', '--help'], { out: help, err })).toBe(0);
    expect(help.text()).toMatch(/--view-key/);
  });
});

/** `--count n` prints n messages, however many arrive together (simulator/README.md). */
describe('sim subscribe --count', () => {
  for (const json of [false, true]) {
    it(`stops after exactly that many messages when more arrive at once${json ? ' (--json)' : ''}`, async () => {
      const view = expectOk(await p.api.post('/api/v1/view_key', {}));
      const d = await deviceWithToken(p, { name: 'burst' });
      const identity = (await ctx.services.deviceAuth.authenticate(p.project.project_key, d.token))!;
      const out = sink();
      const err = sink();
      const argv = [
        'subscribe',
        '--host',
        tb.url,
        '--view-key',
        view.view_key,
        '--view-secret',
        view.view_secret,
        '--kinds',
        'attributes',
        '--count',
        '2',
      ];
      const done = main(json ? [...argv, '--json'] : argv, { out, err });
      await expect.poll(() => err.text()).toMatch(/following/);
      // Five reports at once: they reach the subscriber together, the third before it has closed.
      await Promise.all([1, 2, 3, 4, 5].map((n) => ctx.services.currentValues.report(identity, { n })));
      expect(await done).toBe(0);
      const lines = out.text().trim().split('\n');
      expect(lines).toHaveLength(2);
      for (const line of lines)
        expect(line).toMatch(json ? /"attributes":\{"n":\d\}/ : /burst \(\w+\) attributes \{"n":\d\}$/);
    });
  }
});
