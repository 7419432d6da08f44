import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createProject, createTestApp, expectOk, type ApiResponse, type ProjectFixture, type TestContext } from '../helpers/app.ts';

/**
 * Self-provisioning (`POST /device/v1/certificate`) has its own per-address allowance, PROVISION_BURST at once and
 * PROVISION_RATE a second after that (README "Security and limits"), and a device key already used by another kind
 * of device is refused with a reason that says so.
 */
let ctx: TestContext;
let p: ProjectFixture;
let other: ProjectFixture;

beforeAll(async () => {
  ctx = await createTestApp({ PROVISION_BURST: 5, PROVISION_RATE: 0.5 });
  p = await createProject(ctx, 'fleet');
  other = await createProject(ctx, 'neighbour');
});
afterAll(() => ctx?.close());

async function certificate(body: unknown, projectKey: string, remoteAddress: string): Promise<ApiResponse> {
  const res = await ctx.app.inject({
    method: 'POST',
    url: '/device/v1/certificate',
    remoteAddress,
    headers: { 'content-type': 'application/json', 'project-key': projectKey },
    payload: JSON.stringify(body),
  });
  return { status: res.statusCode, body: res.json(), headers: res.headers };
}

async function autoType(f: ProjectFixture, body: Record<string, unknown> = {}) {
  return expectOk(await f.api.post('/api/v1/device_type', { name: 'auto', allow_auto_create: true, ...body })) as { id: string; type_key: string };
}

describe('certificate requests per client address', () => {
  it('admits a burst, answers 429 with Retry-After in the device envelope beyond it, and admits again once a token is back', async () => {
    const type = await autoType(p);
    const answers: ApiResponse[] = [];
    for (let i = 1; i <= 7; i++) answers.push(await certificate({ device_key: `nat-${i}`, type_key: type.type_key }, p.project.project_key, '198.51.100.7'));
    for (const a of answers.slice(0, 5)) expect(a.body).toMatchObject({ result: 1, device: { name: expect.stringMatching(/^nat-/) } });
    for (const a of answers.slice(5)) {
      expect(a.status).toBe(429);
      expect(a.body).toEqual({ result: 0, errcode: 429, message: expect.stringMatching(/^Too many certificate requests from this address .*retry in 2 s$/) });
      expect(a.headers['retry-after']).toBe('2');
    }
    // Refused requests created nothing.
    const listed = expectOk(await p.api.get('/api/v1/devices?page_records=100')).items as Array<{ device_key: string }>;
    expect(listed.map((d) => d.device_key).sort()).toEqual(['nat-1', 'nat-2', 'nat-3', 'nat-4', 'nat-5']);

    // A device of another project behind another address is not affected meanwhile.
    const neighbour = await autoType(other);
    const ok = await certificate({ device_key: 'lone-1', type_key: neighbour.type_key }, other.project.project_key, '203.0.113.9');
    expect(ok.body).toMatchObject({ result: 1, device: { name: 'lone-1' } });

    // Retry-After is honest: after it, the same address is admitted again (0.5 tokens a second here).
    await new Promise((r) => setTimeout(r, 2_050));
    const again = await certificate({ device_key: 'nat-6', type_key: type.type_key }, p.project.project_key, '198.51.100.7');
    expect(again.body).toMatchObject({ result: 1, device: { name: 'nat-6' } });
  });

  it('counts an IPv6 /64 as one address', async () => {
    const type = await autoType(p);
    for (let i = 1; i <= 5; i++) {
      expect((await certificate({ device_key: `v6-${i}`, type_key: type.type_key }, p.project.project_key, `2001:db8:7:7::${i}`)).status).toBe(200);
    }
    expect((await certificate({ device_key: 'v6-6', type_key: type.type_key }, p.project.project_key, '2001:db8:7:7::ffff')).status).toBe(429);
    expect((await certificate({ device_key: 'v6-6', type_key: type.type_key }, p.project.project_key, '2001:db8:7:8::1')).status).toBe(200);
  });

  it('has defaults that let 1,000 devices behind one address provision in under a minute, and validates its variables', () => {
    const c = loadConfig({});
    expect(c.PROVISION_BURST + 60 * c.PROVISION_RATE).toBeGreaterThanOrEqual(1_000);
    expect(c.PROVISION_RATE).toBeLessThanOrEqual(50);
    expect(loadConfig({ PROVISION_RATE: '2.5', PROVISION_BURST: '40' })).toMatchObject({ PROVISION_RATE: 2.5, PROVISION_BURST: 40 });
    expect(() => loadConfig({ PROVISION_RATE: '0' })).toThrow(/PROVISION_RATE/);
    expect(() => loadConfig({ PROVISION_BURST: '0' })).toThrow(/PROVISION_BURST/);
  });
});

describe('a device key already used by another kind of device', () => {
  it('is refused with errcode 409 naming both types; another type of the same kind answers the device', async () => {
    const direct = await autoType(p, { name: 'thermometer' });
    const gateway = await autoType(p, { name: 'plant gateway', conn_type: '3' });
    const otherDirect = await autoType(p, { name: 'pump' });
    // Each request from its own address: this test is about the answers, not the allowance.
    let n = 50;
    const at = () => `192.0.2.${n++}`;
    const created = await certificate({ device_key: 'kind-1', type_key: direct.type_key }, p.project.project_key, at());
    expect(created.body).toMatchObject({ result: 1, device: { conn_type: '1' } });

    const refused = await certificate({ device_key: 'kind-1', type_key: gateway.type_key }, p.project.project_key, at());
    expect(refused.status).toBe(200);
    expect(refused.body).toEqual({
      result: 0,
      errcode: 409,
      message:
        'Device key "kind-1" is already used by a directly connected device of type "thermometer", but type_key names type ' +
        '"plant gateway", which is for gateways: use another device_key, or change the device\'s type',
    });

    // The same kind (an operator may have moved the device to another type): the device is answered.
    const same = await certificate({ device_key: 'kind-1', type_key: otherDirect.type_key }, p.project.project_key, at());
    expect(same.body).toMatchObject({ result: 1, device: { id: created.body.device.id } });

    // The other way round: a gateway asked for with a direct type's key.
    expect((await certificate({ device_key: 'kind-gw', type_key: gateway.type_key }, p.project.project_key, at())).body).toMatchObject({ result: 1, device: { conn_type: '3' } });
    const back = await certificate({ device_key: 'kind-gw', type_key: direct.type_key }, p.project.project_key, at());
    expect(back.body).toMatchObject({ result: 0, errcode: 409, message: expect.stringMatching(/already used by a gateway of type "plant gateway".*for directly connected devices/) });

    // A device without a type counts as directly connected.
    expectOk(await p.api.post('/api/v1/device', { name: 'bare', device_key: 'kind-bare' }));
    const bare = await certificate({ device_key: 'kind-bare', type_key: gateway.type_key }, p.project.project_key, at());
    expect(bare.body).toMatchObject({ result: 0, errcode: 409, message: expect.stringMatching(/a directly connected device without a type/) });
  });
});
