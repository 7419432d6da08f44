import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProject, createTestApp, expectFailure, expectOk, type ProjectFixture, type TestContext } from '../helpers/app.ts';

let ctx: TestContext;
let p: ProjectFixture;

beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx);
});
afterAll(() => ctx?.close());

describe('devices', () => {
  it('creates a device and reads it back with the documented fields', async () => {
    const created = expectOk(await p.api.post('/api/v1/device', { name: 'pump 1', descr: 'basement', tags: { floor: '-1' }, device_key: 'chip-001' }));
    expect(created).toEqual({ id: expect.any(String), name: 'pump 1' });
    const d = expectOk(await p.api.get(`/api/v1/device/${created.id}`));
    expect(d).toEqual({
      id: created.id,
      name: 'pump 1',
      descr: 'basement',
      device_key: 'chip-001',
      tags: { floor: '-1' },
      create_time: expect.any(Number),
      alarm: {},
      active: {},
      online: false,
      type: '',
      type_info: { id: '', name: '', conn_type: '1', conn_protocol: 'mqtt' },
      groups: [],
      view_token: expect.any(String),
      device_code: expect.any(String),
    });
  });

  it('rejects a duplicate device_key with 409', async () => {
    expectOk(await p.api.post('/api/v1/device', { name: 'a', device_key: 'dup-key' }));
    const body = expectFailure(await p.api.post('/api/v1/device', { name: 'b', device_key: 'dup-key' }), 409);
    expect(body.message).toMatch(/device_key/);
  });
});
