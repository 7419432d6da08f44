import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../simulator/cli.ts';
import { startTestBroker, type TestBroker } from '../helpers/broker.ts';
import { createProject, createTestApp, deviceWithToken, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';
import { sink } from '../helpers/sim-output.ts';

/** `sim subscribe --count n` prints n messages, however many arrive together (simulator/README.md). */
let ctx: TestContext;
let p: ProjectFixture;
let tb: TestBroker;
beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx);
  tb = await startTestBroker(ctx);
});
afterAll(async () => {
  await tb?.close();
  await ctx?.close();
});

describe('sim subscribe --count', () => {
  for (const json of [false, true]) {
    it(`stops after exactly that many messages when more arrive at once${json ? ' (--json)' : ''}`, async () => {
      const view = expectOk(await p.api.post('/api/v1/view_key', {}));
      const d = await deviceWithToken(p, { name: 'burst' });
      const identity = (await ctx.services.deviceAuth.authenticate(p.project.project_key, d.token))!;
      const out = sink();
      const err = sink();
      const argv = ['subscribe', '--host', tb.url, '--view-key', view.view_key, '--view-secret', view.view_secret, '--kinds', 'attributes', '--count', '2'];
      const done = main(json ? [...argv, '--json'] : argv, { out, err });
      await expect.poll(() => err.text()).toMatch(/following/);
      // Five reports at once: they reach the subscriber together, the third before it has closed.
      await Promise.all([1, 2, 3, 4, 5].map((n) => ctx.services.currentValues.report(identity, { n })));
      expect(await done).toBe(0);
      const lines = out.text().trim().split('\n');
      expect(lines).toHaveLength(2);
      for (const line of lines) expect(line).toMatch(json ? /"attributes":\{"n":\d\}/ : /burst \(\w+\) attributes \{"n":\d\}$/);
    });
  }
});
