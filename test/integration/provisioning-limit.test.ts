import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createCertificateRepository } from '../../src/db/repositories/certificate.repository.ts';
import { createCertificateService } from '../../src/domain/devices/certificate.service.ts';
import {
  createProject,
  createTestApp,
  expectOk,
  type ApiResponse,
  type ProjectFixture,
  type TestContext,
} from '../helpers/app.ts';
import { addDeviceType } from '../helpers/factories.ts';

/**
 * Self-provisioning (`POST /device/v1/certificate`) has its own per-address allowance, PROVISION_BURST at once and
 * PROVISION_RATE a second after that (README "Security and limits"), devices created in one project are bounded
 * whatever the addresses (PROVISION_CREATE_BURST, PROVISION_CREATE_RATE), and a device key already used by another
 * kind of device is refused with a reason that says so. Rates are 0.01/s: what refills while a test runs is
 * negligible, and the asserted ranges hold however slow the machine (refill itself: test/unit/token-buckets.test.ts).
 */
let ctx: TestContext;
let p: ProjectFixture;
let other: ProjectFixture;

beforeAll(async () => {
  ctx = await createTestApp({ PROVISION_BURST: 5, PROVISION_RATE: 0.01 });
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

const autoType = (f: ProjectFixture, body: Record<string, unknown> = {}) =>
  addDeviceType(f.api, { name: 'auto', allow_auto_create: true, ...body });

describe('certificate requests per client address', () => {
  it('admits a burst, answers 429 with Retry-After in the device envelope beyond it', async () => {
    const type = await autoType(p);
    const answers: ApiResponse[] = [];
    for (let i = 1; i <= 7; i++)
      answers.push(
        await certificate({ device_key: `nat-${i}`, type_key: type.type_key }, p.project.project_key, '198.51.100.7'),
      );
    for (const a of answers.slice(0, 5))
      expect(a.body).toMatchObject({ result: 1, device: { name: expect.stringMatching(/^nat-/) } });
    for (const a of answers.slice(5)) {
      expect(a.status).toBe(429);
      expect(a.body).toEqual({
        result: 0,
        errcode: 429,
        message: expect.stringMatching(
          /^Too many certificate requests from this address \(0\.01\/s, bursts of 5\), retry in \d+ s$/,
        ),
      });
      // The next token is 100 s away at 0.01/s, less what refilled meanwhile (0.01 a second of test time).
      const seconds = Number(a.headers['retry-after']);
      expect(seconds).toBeGreaterThanOrEqual(50);
      expect(seconds).toBeLessThanOrEqual(100);
      expect((a.body as { message: string }).message).toMatch(new RegExp(`retry in ${seconds} s$`));
    }
    // Refused requests created nothing.
    const listed = expectOk(await p.api.get('/api/v1/devices?page_records=100')).items as Array<{ device_key: string }>;
    expect(listed.map((d) => d.device_key).sort()).toEqual(['nat-1', 'nat-2', 'nat-3', 'nat-4', 'nat-5']);

    // A device of another project behind another address is not affected meanwhile.
    const neighbour = await autoType(other);
    const ok = await certificate(
      { device_key: 'lone-1', type_key: neighbour.type_key },
      other.project.project_key,
      '203.0.113.9',
    );
    expect(ok.body).toMatchObject({ result: 1, device: { name: 'lone-1' } });
    // Nor is another address of the same project.
    const elsewhere = await certificate(
      { device_key: 'nat-6', type_key: type.type_key },
      p.project.project_key,
      '198.51.100.8',
    );
    expect(elsewhere.body).toMatchObject({ result: 1, device: { name: 'nat-6' } });
  });

  it('counts an IPv6 /64 as one address', async () => {
    const type = await autoType(p);
    for (let i = 1; i <= 5; i++) {
      expect(
        (
          await certificate(
            { device_key: `v6-${i}`, type_key: type.type_key },
            p.project.project_key,
            `2001:db8:7:7::${i}`,
          )
        ).status,
      ).toBe(200);
    }
    expect(
      (await certificate({ device_key: 'v6-6', type_key: type.type_key }, p.project.project_key, '2001:db8:7:7::ffff'))
        .status,
    ).toBe(429);
    expect(
      (await certificate({ device_key: 'v6-6', type_key: type.type_key }, p.project.project_key, '2001:db8:7:8::1'))
        .status,
    ).toBe(200);
  });

  it('has defaults that let 1,000 devices behind one address provision in under a minute, and validates its variables', () => {
    const c = loadConfig({});
    expect(c.PROVISION_BURST + 60 * c.PROVISION_RATE).toBeGreaterThanOrEqual(1_000);
    expect(c.PROVISION_RATE).toBeLessThanOrEqual(50);
    expect(loadConfig({ PROVISION_RATE: '2.5', PROVISION_BURST: '40' })).toMatchObject({
      PROVISION_RATE: 2.5,
      PROVISION_BURST: 40,
    });
    expect(() => loadConfig({ PROVISION_RATE: '0' })).toThrow(/PROVISION_RATE/);
    expect(() => loadConfig({ PROVISION_BURST: '0' })).toThrow(/PROVISION_BURST/);
  });
});

describe('devices auto-created per project', () => {
  let limited: TestContext;
  beforeAll(async () => {
    limited = await createTestApp({ PROVISION_CREATE_BURST: 3, PROVISION_CREATE_RATE: 0.01 });
  });
  afterAll(() => limited?.close());

  async function ask(body: unknown, projectKey: string, remoteAddress: string): Promise<ApiResponse> {
    const res = await limited.app.inject({
      method: 'POST',
      url: '/device/v1/certificate',
      remoteAddress,
      headers: { 'content-type': 'application/json', 'project-key': projectKey },
      payload: JSON.stringify(body),
    });
    return { status: res.statusCode, body: res.json(), headers: res.headers };
  }

  it('are bounded whatever the addresses; existing devices and other projects are not affected', async () => {
    const a = await createProject(limited, 'factory');
    const b = await createProject(limited, 'other factory');
    const typeA = await autoType(a);
    let n = 1;
    const fresh = () => `203.0.113.${n++}`;
    // Requests that create nothing do not use the allowance.
    for (let i = 0; i < 4; i++)
      expect(
        (await ask({ device_key: `x-${i}`, type_key: 'nosuchtype' }, a.project.project_key, fresh())).body,
      ).toMatchObject({ errcode: 404 });

    for (let i = 1; i <= 3; i++)
      expect(
        (await ask({ device_key: `f-${i}`, type_key: typeA.type_key }, a.project.project_key, fresh())).body,
      ).toMatchObject({ result: 1 });
    const refused = await ask({ device_key: 'f-4', type_key: typeA.type_key }, a.project.project_key, fresh());
    expect(refused.status).toBe(429);
    expect(refused.body).toEqual({
      result: 0,
      errcode: 429,
      message: expect.stringMatching(
        /^Too many new devices in this project \(0\.01\/s, bursts of 3\), retry in \d+ s$/,
      ),
    });
    const seconds = Number(refused.headers['retry-after']);
    expect(seconds).toBeGreaterThanOrEqual(50);
    expect(seconds).toBeLessThanOrEqual(100);
    const listed = expectOk(await a.api.get('/api/v1/devices?page_records=100')).items as Array<{ device_key: string }>;
    expect(listed.map((d) => d.device_key).sort()).toEqual(['f-1', 'f-2', 'f-3']);

    // A device that exists gets its certificate, with or without its type key, from any address.
    expect(
      (await ask({ device_key: 'f-2', type_key: typeA.type_key }, a.project.project_key, fresh())).body,
    ).toMatchObject({ result: 1, device: { name: 'f-2' } });
    expect((await ask({ device_key: 'f-3' }, a.project.project_key, fresh())).body).toMatchObject({
      result: 1,
      device: { name: 'f-3' },
    });
    // Another project has its own allowance.
    const typeB = await autoType(b);
    expect(
      (await ask({ device_key: 'g-1', type_key: typeB.type_key }, b.project.project_key, fresh())).body,
    ).toMatchObject({ result: 1 });
  });

  it('has defaults for a factory powering on 1,000 devices, far below an unbounded stream, and validates its variables', () => {
    const c = loadConfig({});
    expect(c.PROVISION_CREATE_BURST).toBeGreaterThanOrEqual(1_000);
    expect(c.PROVISION_CREATE_BURST + 3_600 * c.PROVISION_CREATE_RATE).toBeLessThanOrEqual(30_000);
    expect(loadConfig({ PROVISION_CREATE_RATE: '0.5', PROVISION_CREATE_BURST: '20' })).toMatchObject({
      PROVISION_CREATE_RATE: 0.5,
      PROVISION_CREATE_BURST: 20,
    });
    expect(() => loadConfig({ PROVISION_CREATE_RATE: '0' })).toThrow(/PROVISION_CREATE_RATE/);
    expect(() => loadConfig({ PROVISION_CREATE_BURST: '1.5' })).toThrow(/PROVISION_CREATE_BURST/);
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

    const refused = await certificate(
      { device_key: 'kind-1', type_key: gateway.type_key },
      p.project.project_key,
      at(),
    );
    expect(refused.status).toBe(200);
    expect(refused.body).toEqual({
      result: 0,
      errcode: 409,
      message:
        'Device key "kind-1" is already used by a directly connected device of type "thermometer", but type_key names type ' +
        '"plant gateway", which is for gateways: use another device_key, or change the device\'s type',
    });

    // The same kind (an operator may have moved the device to another type): the device is answered.
    const same = await certificate(
      { device_key: 'kind-1', type_key: otherDirect.type_key },
      p.project.project_key,
      at(),
    );
    expect(same.body).toMatchObject({ result: 1, device: { id: created.body.device.id } });

    // The other way round: a gateway asked for with a direct type's key.
    expect(
      (await certificate({ device_key: 'kind-gw', type_key: gateway.type_key }, p.project.project_key, at())).body,
    ).toMatchObject({ result: 1, device: { conn_type: '3' } });
    const back = await certificate({ device_key: 'kind-gw', type_key: direct.type_key }, p.project.project_key, at());
    expect(back.body).toMatchObject({
      result: 0,
      errcode: 409,
      message: expect.stringMatching(
        /already used by a gateway of type "plant gateway".*for directly connected devices/,
      ),
    });

    // A device without a type counts as directly connected.
    expectOk(await p.api.post('/api/v1/device', { name: 'bare', device_key: 'kind-bare' }));
    const bare = await certificate(
      { device_key: 'kind-bare', type_key: gateway.type_key },
      p.project.project_key,
      at(),
    );
    expect(bare.body).toMatchObject({
      result: 0,
      errcode: 409,
      message: expect.stringMatching(/a directly connected device without a type/),
    });
  });
});

describe('the certificate of an existing device', () => {
  it('costs no type look-up when type_key names its own type, one when it names another', async () => {
    const type = await autoType(p, { name: 'meter' });
    const sibling = await autoType(p, { name: 'meter 2' });
    const repo = createCertificateRepository(ctx.database.db);
    let typeLookups = 0;
    const counting = {
      ...repo,
      typeByKey: (projectId: string, key: string) => (typeLookups++, repo.typeByKey(projectId, key)),
    };
    let creations = 0;
    const service = createCertificateService({ repo: counting, devices: ctx.services.devices });
    const beforeCreate = () => void creations++;
    const created = await service.request(
      p.project.project_key,
      { device_key: 'own-1', type_key: type.type_key },
      { beforeCreate },
    );
    expect([typeLookups, creations]).toEqual([1, 1]);
    typeLookups = 0;
    expect(
      await service.request(p.project.project_key, { device_key: 'own-1', type_key: type.type_key }, { beforeCreate }),
    ).toEqual(created);
    expect([typeLookups, creations]).toEqual([0, 1]);
    expect(
      await service.request(
        p.project.project_key,
        { device_key: 'own-1', type_key: sibling.type_key },
        { beforeCreate },
      ),
    ).toEqual(created);
    expect([typeLookups, creations]).toEqual([1, 1]);
  });
});
