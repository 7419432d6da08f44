import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestContext } from '../helpers/app.ts';

/**
 * Behind a trusted proxy the client address is the entry the proxy added (the last of
 * X-Forwarded-For): a client writing its own X-Forwarded-For cannot get a fresh login allowance with
 * every attempt.
 */
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestApp({ TRUST_PROXY: true, LOGIN_RATE_LIMIT: 3 });
});
afterAll(() => ctx?.close());

describe('client address behind a trusted proxy', () => {
  it('counts logins by the address the proxy saw, whatever the client put first', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await ctx.app.inject({
        method: 'POST',
        url: '/api/v1/access_token',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': `10.0.0.${i}, 203.0.113.7` },
        payload: { app_id: 'nope', access_key: 'x', secret_key: 'y' },
      });
      statuses.push(res.statusCode);
    }
    expect(statuses.slice(0, 3)).toEqual([401, 401, 401]);
    expect(statuses.slice(3)).toEqual([429, 429, 429]);
  });
});
