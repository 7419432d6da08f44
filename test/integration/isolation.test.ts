import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createProject,
  createTestApp,
  expectFailure,
  expectOk,
  type ProjectFixture,
  type TestContext,
} from '../helpers/app.ts';

/**
 * Tenancy is absolute (http-api.md §1): every route that names a resource is driven with project A's
 * administrator token against project B's resources and must answer "not found", leave B untouched,
 * and — as a control — succeed with B's own token, which proves the request itself was valid.
 */
let ctx: TestContext;
let a: ProjectFixture;
let b: ProjectFixture;
const B: Record<string, string> = {};

beforeAll(async () => {
  // The targets it makes are on the loopback address, which webhooks may reach only when allowed.
  ctx = await createTestApp({}, { settings: { alarmNotify: { allowNetworks: '127.0.0.0/8' } } });
  a = await createProject(ctx, 'tenant A');
  b = await createProject(ctx, 'tenant B');
  const type = expectOk(await b.api.post('/api/v1/device_type', { name: 'meter' }));
  B.type = type.id;
  expectOk(
    await b.api.post(`/api/v1/device_type/${type.id}/attribute`, {
      identifier: 'temp',
      name: 'Temperature',
      data_type: 'number',
    }),
  );
  expectOk(await b.api.post(`/api/v1/device_type/${type.id}/data_stream`, { identifier: 'stream', format: 'hex' }));
  B.info = expectOk(
    await b.api.post(`/api/v1/device_type/${type.id}/extend_info`, { info_type: 'text', name: 'Serial' }),
  ).id;
  B.group = expectOk(await b.api.post('/api/v1/device_group', { name: 'hall' })).id;
  B.device = expectOk(await b.api.post('/api/v1/device', { name: 'victim', type: type.id, device_key: 'b-key' })).id;
  // A gateway and a sub-device of B (device-protocol.md §8): the gateway routes name the gateway.
  const gatewayType = expectOk(await b.api.post('/api/v1/device_type', { name: 'gateway', conn_type: '3' })).id;
  const subType = expectOk(await b.api.post('/api/v1/device_type', { name: 'sensor', conn_type: '2' })).id;
  B.gateway = expectOk(await b.api.post('/api/v1/device', { name: 'gateway', type: gatewayType })).id;
  B.sub = expectOk(await b.api.post('/api/v1/device', { name: 'sensor', type: subType })).id;
  B.customer = expectOk(
    await b.api.post('/api/v1/customer', { name: 'Bob', account: 'bob', password: 'password-bob' }),
  ).id;
  B.app = expectOk(await b.api.post('/api/v1/app', { name: 'second' })).app_id;
  B.admin = expectOk(await b.api.post('/api/v1/administrator', { account: 'ops', password: 'password-ops' })).id;
  expectOk(await a.api.post('/api/v1/device', { name: 'own device of A' }));
  // An alarm rule of B, an active alarm of B's device, and a notification target of B (README "Alarms").
  B.alarm_rule = expectOk(
    await b.api.post('/api/v1/alarm_rule', {
      name: 'hot',
      device_type_id: type.id,
      level: 2,
      condition: { kind: 'attribute', identifier: 'temp', op: '>', value: 30 },
    }),
  ).id;
  await ctx.services.currentValues.report(
    { deviceId: B.device!, projectId: b.project.id, name: 'victim', typeId: type.id, connType: '1', disabled: false },
    { temp: 31 },
  );
  await ctx.services.alarms.idle();
  B.alarm_log = expectOk(await b.api.get('/api/v1/alarm_logs')).items[0].id;
  B.notification_target = expectOk(
    await b.api.post('/api/v1/notification_target', { name: 'hook', url: 'http://127.0.0.1:9/hook', enabled: false }),
  ).id;
});
afterAll(() => ctx?.close());

/** Which of B's resources a route's `:id` names, from the path. */
function resourceOf(url: string): string {
  const m =
    /^\/api\/v1\/(?:control\/)?(device_type|device_group|device|customer|app|administrator|alarm_rule|alarm_log|notification_target)\/:id/.exec(
      url,
    );
  if (!m) throw new Error(`no resource kind known for ${url}: extend resourceOf`);
  return {
    device_type: 'type',
    device_group: 'group',
    device: 'device',
    customer: 'customer',
    app: 'app',
    administrator: 'admin',
    alarm_rule: 'alarm_rule',
    alarm_log: 'alarm_log',
    notification_target: 'notification_target',
  }[m[1]!]!;
}

function fill(url: string): string {
  return url
    .replace(':id', B[url.includes('/sub_devices') ? 'gateway' : resourceOf(url)]!)
    .replace('attribute/:identifier', 'attribute/temp')
    .replace('data_stream/:identifier', 'data_stream/stream')
    .replace('data/:identifier', 'data/stream')
    .replace(':info_id', B.info!);
}

/** A valid body for every mutating route that names a resource (valid for B itself: see the control). */
const bodies = (): Record<string, unknown> => ({
  'PUT /api/v1/device_type/:id': { name: 'renamed' },
  'POST /api/v1/device_type/:id/type_key_reset': {},
  'POST /api/v1/device_type/:id/attribute': { identifier: 'hum', name: 'Humidity', data_type: 'number' },
  'PUT /api/v1/device_type/:id/attribute/:identifier': { name: 'renamed' },
  'POST /api/v1/device_type/:id/data_stream': { identifier: 'second', format: 'text' },
  'PUT /api/v1/device_type/:id/data_stream/:identifier': { name: 'renamed' },
  'POST /api/v1/device_type/:id/extend_info': { info_type: 'number', name: 'Weight' },
  'PUT /api/v1/device_type/:id/extend_info/:info_id': { name: 'renamed' },
  'PUT /api/v1/device_group/:id': { name: 'renamed' },
  'POST /api/v1/device/:id/certificate/reset': {},
  'PUT /api/v1/device/:id/info': { name: 'renamed' },
  'PUT /api/v1/device/:id/tags': { tags: { k: 'v' } },
  'POST /api/v1/device/:id/tags_remove': { keys: ['k'] },
  'PUT /api/v1/device/:id/groups': { groups: [B.group] },
  'POST /api/v1/device/:id/standard_infos': { info_type: 'location', value: { latitude: 1 } },
  'POST /api/v1/device/:id/extend_infos': { infos: { [B.info!]: 'SN-1' } },
  'PUT /api/v1/customer/:id/info': { name: 'renamed' },
  'PUT /api/v1/customer/:id/pwd': { password: 'another-password' },
  'PUT /api/v1/customer/:id/tags': { tags: { k: 'v' } },
  'POST /api/v1/customer/:id/tags_remove': { keys: ['k'] },
  'POST /api/v1/customer/:id/devices': { devices: [B.device] },
  'POST /api/v1/customer/:id/devices_remove': { devices: [B.device] },
  'POST /api/v1/app/:id/secret_reset': {},
  'PUT /api/v1/administrator/:id/info': { name: 'renamed' },
  'PUT /api/v1/administrator/:id/pwd': { password: 'another-password' },
  'POST /api/v1/control/device/:id/attributes': { relay: true },
  'PUT /api/v1/control/device/:id/attributes': { target: 1 },
  'POST /api/v1/control/device/:id/data/:identifier/set': { type: 'text', msg: 'x' },
  'POST /api/v1/control/device/:id/command': { method: 'reboot', params: {} },
  'POST /api/v1/device/:id/attributes_remove': { keys: ['temp'] },
  'POST /api/v1/device/:id/sub_devices': { device: B.sub, address: '1' },
  'POST /api/v1/device/:id/sub_devices_remove': { devices: [B.sub] },
  'PUT /api/v1/alarm_rule/:id': { level: 3 },
  'POST /api/v1/alarm_log/:id/ack': { note: 'seen' },
  'POST /api/v1/alarm_log/:id/clear': { note: 'fixed' },
  'PUT /api/v1/notification_target/:id': { name: 'renamed' },
});

/** Query strings of GET routes that need one. */
const queries: Record<string, string> = {
  'GET /api/v1/device/:id/attributes/aggregate': '?identifiers=temp&interval=1h',
  'GET /api/v1/device/:id/attributes/export': '?identifiers=temp',
};

const targeted = () => ctx.app.apiRoutes.filter((r) => r.url.startsWith('/api/') && r.url.includes('/:'));
// Deletes go last, and in an order where nothing deleted is needed by what follows.
const deleteOrder = [
  'alarm_rule',
  'notification_target',
  'attribute',
  'data_stream',
  'extend_info',
  'customer',
  'app',
  'administrator',
  'device/',
  'device_group',
  'device_type',
];
const rank = (r: { method: string; url: string }) =>
  r.method === 'DELETE' ? 1 + deleteOrder.findIndex((k) => r.url.includes(`/${k}`)) : 0;

describe('tenant isolation', () => {
  it('knows a body for every mutating route that names a resource', () => {
    const known = bodies();
    const missing = targeted()
      .filter((r) => r.method === 'POST' || r.method === 'PUT')
      .map((r) => `${r.method} ${r.url}`)
      .filter((k) => !(k in known));
    expect(missing).toEqual([]);
    expect(targeted().length).toBeGreaterThan(40);
  });

  it("answers 404 to every route given another project's resource, and changes nothing there", async () => {
    const before = {
      device: expectOk(await b.api.get(`/api/v1/device/${B.device}`)),
      type: expectOk(await b.api.get(`/api/v1/device_type/${B.type}`)),
      customer: expectOk(await b.api.get(`/api/v1/customer/${B.customer}`)),
      certificate: expectOk(await b.api.get(`/api/v1/device/${B.device}/certificate`)),
    };
    const known = bodies();
    const answers: string[] = [];
    for (const r of [...targeted()].sort((x, y) => rank(x) - rank(y))) {
      const key = `${r.method} ${r.url}`;
      const res = await a.admin.call(r.method as 'GET', fill(r.url) + (queries[key] ?? ''), known[key]);
      if (res.status !== 200 || res.body?.result !== false || res.body?.errcode !== 404)
        answers.push(`${key} → ${res.status} ${JSON.stringify(res.body)}`);
    }
    expect(answers).toEqual([]);
    expect(expectOk(await b.api.get(`/api/v1/device/${B.device}`))).toEqual(before.device);
    expect(expectOk(await b.api.get(`/api/v1/device_type/${B.type}`))).toEqual(before.type);
    expect(expectOk(await b.api.get(`/api/v1/customer/${B.customer}`))).toEqual(before.customer);
    expect(expectOk(await b.api.get(`/api/v1/device/${B.device}/certificate`))).toEqual(before.certificate);
    expect(expectOk(await b.api.get('/api/v1/apps')).items).toHaveLength(2);
    expect(expectOk(await b.api.get('/api/v1/administrators')).items).toHaveLength(2);
  });

  it("refuses another project's ids inside request bodies and filters", async () => {
    expectFailure(await a.api.post('/api/v1/device', { name: 'x', type: B.type }), 404);
    expectFailure(await a.api.post('/api/v1/device_group', { name: 'x', parent_id: B.group }), 404);
    const own = expectOk(await a.api.post('/api/v1/device', { name: 'mine' }));
    expectFailure(await a.api.put(`/api/v1/device/${own.id}/groups`, { groups: [B.group] }), 404);
    const customer = expectOk(
      await a.api.post('/api/v1/customer', { name: 'Ann', account: 'ann', password: 'password-ann' }),
    );
    expectFailure(await a.api.post(`/api/v1/customer/${customer.id}/devices`, { devices: [B.device] }), 404);
    expectFailure(await a.api.get(`/api/v1/devices?group=${B.group}`), 404);
    expect(expectOk(await a.api.get(`/api/v1/devices?type=${B.type}`)).total).toBe(0);
    expect(expectOk(await a.api.get('/api/v1/devices?device_key=b-key')).total).toBe(0);
  });

  it("never lists another project's resources", async () => {
    const ids = (items: Array<{ id?: string; app_id?: string }>) => items.map((i) => i.id ?? i.app_id);
    const lists = {
      devices: ids(expectOk(await a.api.get('/api/v1/devices?page_records=500')).items),
      types: ids(expectOk(await a.api.get('/api/v1/device_types')).items),
      groups: ids(expectOk(await a.api.get('/api/v1/device_groups_tree')).items),
      customers: ids(expectOk(await a.api.get('/api/v1/customers')).items),
      apps: ids(expectOk(await a.api.get('/api/v1/apps')).items),
      admins: ids(expectOk(await a.api.get('/api/v1/administrators')).items),
    };
    for (const id of Object.values(B)) expect(Object.values(lists).flat()).not.toContain(id);
    expect(expectOk(await a.api.get('/api/v1/devices_stat')).device_total).toBe(lists.devices.length);
    expect(expectOk(await a.api.get('/api/v1/project')).id).toBe(a.project.id);
  });

  it('control: the same requests succeed with the owner’s token', async () => {
    const known = bodies();
    const failures: string[] = [];
    for (const r of [...targeted()].sort((x, y) => rank(x) - rank(y))) {
      const key = `${r.method} ${r.url}`;
      // Device communication needs the device online; a certificate reset earlier in the loop kicks it.
      if (r.url.startsWith('/api/v1/control/')) {
        ctx.services.sessions.attach({
          deviceId: B.device!,
          projectId: b.project.id,
          transport: 'mqtt',
          send: async () => {},
          close: () => {},
        });
      }
      const res = await b.admin.call(r.method as 'GET', fill(r.url) + (queries[key] ?? ''), known[key]);
      // The CSV export answers text, not the envelope.
      const csv = res.status === 200 && String(res.headers['content-type']).startsWith('text/csv');
      if (res.body?.result !== true && !csv) failures.push(`${key} → ${res.status} ${JSON.stringify(res.body)}`);
    }
    expect(failures).toEqual([]);
  });
});
