import type { DeviceIdentity } from '../../src/domain/devices/device-identity.ts';
import {
  client,
  createProject,
  expectOk,
  TEST_PLATFORM_TOKEN,
  type ApiResponse,
  type TestContext,
} from '../helpers/app.ts';
import { addDeviceWithToken } from '../helpers/factories.ts';

/**
 * The world the examples of docs/http-api.md run in: one project with everything an example names.
 * Each key is a placeholder of the examples (`<device_id>` is `device_id`). Things an example deletes
 * or resets have a `spare_` copy of their own, so the examples stay independent of their order.
 */
export type Placeholders = Record<string, string>;

export async function createContractFixtures(ctx: TestContext): Promise<Placeholders> {
  const p = await createProject(ctx, 'Greenhouse');
  const api = p.api;
  const ok = async (res: Promise<ApiResponse>) => expectOk(await res);

  // Device types: a thermometer with an attribute model, a data stream and an extend-info definition.
  const type = await ok(
    api.post('/api/v1/device_type', { name: 'Thermometer', descr: 'Room sensor', tags: { vendor: 'acme' } }),
  );
  await ok(
    api.post(`/api/v1/device_type/${type.id}/attribute`, {
      identifier: 'temperature',
      name: 'Temperature',
      data_type: 'number',
      unit: '°C',
      data_options: { min: -40, max: 85 },
    }),
  );
  await ok(
    api.post(`/api/v1/device_type/${type.id}/attribute`, {
      identifier: 'humidity',
      name: 'Humidity',
      data_type: 'number',
      unit: '%',
    }),
  );
  await ok(
    api.post(`/api/v1/device_type/${type.id}/data_stream`, {
      identifier: 'stream',
      name: 'Raw frames',
      format: 'json',
    }),
  );
  await ok(api.post(`/api/v1/device_type/${type.id}/data_stream`, { identifier: 'spare', format: 'hex' }));
  const info = await ok(
    api.post(`/api/v1/device_type/${type.id}/extend_info`, {
      info_type: 'text',
      name: 'Serial number',
      options: { max_length: 32 },
    }),
  );
  const spareInfo = await ok(
    api.post(`/api/v1/device_type/${type.id}/extend_info`, { info_type: 'number', name: 'Floor' }),
  );
  const spareType = await ok(api.post('/api/v1/device_type', { name: 'Obsolete type' }));
  const gatewayType = await ok(api.post('/api/v1/device_type', { name: 'Modbus gateway', conn_type: '3' }));
  const subType = await ok(api.post('/api/v1/device_type', { name: 'Modbus meter', conn_type: '2' }));

  // Groups: a root with a child, and one to delete.
  const group = await ok(api.post('/api/v1/device_group', { name: 'Building A', tags: { site: 'north' } }));
  const childGroup = await ok(api.post('/api/v1/device_group', { name: 'Floor 1', parent_id: group.id }));
  const spareGroup = await ok(api.post('/api/v1/device_group', { name: 'Unused' }));

  // Devices: the thermometer is online (a session as the broker makes one) and has reported.
  const device = await ok(
    api.post('/api/v1/device', { name: 'Thermometer 1', type: type.id, device_key: 'th-0001', tags: { room: '101' } }),
  );
  await ok(api.put(`/api/v1/device/${device.id}/groups`, { groups: [childGroup.id] }));
  const cert = await ok(api.get(`/api/v1/device/${device.id}/certificate`));
  const identity: DeviceIdentity = {
    deviceId: device.id,
    projectId: p.project.id,
    name: 'Thermometer 1',
    typeId: type.id,
    connType: '1',
    disabled: false,
  };
  ctx.services.sessions.attach({
    deviceId: device.id,
    projectId: p.project.id,
    transport: 'mqtt',
    send: async () => {},
    close: () => {},
  });
  ctx.services.presence.connected(identity, 'mqtt');
  const spareDevice = await ok(api.post('/api/v1/device', { name: 'Old thermometer', type: type.id }));
  const gateway = await ok(api.post('/api/v1/device', { name: 'Gateway 1', type: gatewayType.id }));
  const subDevice = await ok(api.post('/api/v1/device', { name: 'Meter 1', type: subType.id }));
  const spareSub = await ok(api.post('/api/v1/device', { name: 'Meter 2', type: subType.id }));
  await ok(api.post(`/api/v1/device/${gateway.id}/sub_devices`, { device: subDevice.id, address: '1' }));
  await ok(api.post(`/api/v1/device/${gateway.id}/sub_devices`, { device: spareSub.id, address: '2' }));

  // An alarm rule that the thermometer's reports trigger; a webhook target for its notifications.
  const rule = await ok(
    api.post('/api/v1/alarm_rule', {
      name: 'Too hot',
      device_type_id: type.id,
      level: 2,
      message: 'temperature {{value}}',
      condition: { kind: 'attribute', identifier: 'temperature', op: '>', value: 30 },
    }),
  );
  const spareRule = await ok(
    api.post('/api/v1/alarm_rule', {
      name: 'Silent',
      device_type_id: type.id,
      level: 1,
      condition: { kind: 'silence', seconds: 3600 },
    }),
  );
  const target = await ok(
    api.post('/api/v1/notification_target', {
      name: 'Ops webhook',
      url: 'https://ops.example.com/hooks/iot',
      min_level: 2,
      enabled: false,
    }),
  );
  const spareTarget = await ok(
    api.post('/api/v1/notification_target', {
      name: 'Old webhook',
      url: 'https://old.example.com/hook',
      enabled: false,
    }),
  );

  const now = Date.now();
  await ctx.services.currentValues.reportSeries(identity, [
    { ts: now - 120_000, attributes: { temperature: 21.5, humidity: 40 } },
    { ts: now - 60_000, attributes: { temperature: 22, humidity: 41 } },
  ]);
  await ctx.services.currentValues.report(identity, { temperature: 31.5, humidity: 42 });
  await ctx.services.alarms.idle();
  await ctx.services.currentCache.flush();
  await ctx.services.presence.settle();
  const alarmLogs = await ok(api.get(`/api/v1/device/${device.id}/alarm_logs`));
  const alarmLog = (alarmLogs.items as Array<{ id: string }>)[0];
  if (!alarmLog) throw new Error('the fixture alarm did not trigger');

  // A command and a data-stream message in the device's logs.
  await ok(api.post(`/api/v1/control/device/${device.id}/command`, { method: 'reboot', params: { delay: 5 } }));
  await ok(api.post(`/api/v1/control/device/${device.id}/data/stream/set`, { type: 'json', msg: { led: 'on' } }));

  // Customers: one with the thermometer bound and a token of their own; one to delete.
  const customer = await ok(
    api.post('/api/v1/customer', {
      name: 'Alice',
      account: 'alice',
      password: 'alice-secret-1',
      email: 'alice@example.com',
    }),
  );
  await ok(api.post(`/api/v1/customer/${customer.id}/devices`, { devices: [device.id, spareDevice.id] }));
  const spareCustomer = await ok(
    api.post('/api/v1/customer', { name: 'Bob', account: 'bob', password: 'bob-secret-12' }),
  );
  const customerLogin = await ok(
    client(ctx.app).post('/api/v1/customer_login', {
      app_id: p.project.app.app_id,
      account: 'alice',
      password: 'alice-secret-1',
    }),
  );

  // Apps and administrators to reset or delete.
  const spareApp = await ok(api.post('/api/v1/app', { name: 'Old integration' }));
  const spareAdmin = await ok(
    api.post('/api/v1/administrator', { account: 'operator', password: 'operator-pass-1', name: 'Night shift' }),
  );

  // A project the platform example deletes.
  const spareProject = await ctx.services.projects.create({ name: 'Trial tenant' });

  return {
    app_id: p.project.app.app_id,
    access_key: p.project.app.access_key,
    secret_key: p.project.app.secret_key,
    admin_account: p.project.admin.account,
    admin_password: p.project.admin.password,
    project_key: p.project.project_key,
    app_token: p.appToken,
    admin_token: p.adminToken,
    customer_token: customerLogin.access_token,
    platform_token: TEST_PLATFORM_TOKEN,
    device_type_id: type.id,
    spare_device_type_id: spareType.id,
    info_id: info.id,
    spare_info_id: spareInfo.id,
    group_id: group.id,
    child_group_id: childGroup.id,
    spare_group_id: spareGroup.id,
    device_id: device.id,
    device_token: cert.access_token,
    spare_device_id: spareDevice.id,
    gateway_id: gateway.id,
    sub_device_id: subDevice.id,
    spare_sub_device_id: spareSub.id,
    alarm_rule_id: rule.id,
    spare_alarm_rule_id: spareRule.id,
    alarm_log_id: alarmLog.id,
    target_id: target.id,
    spare_target_id: spareTarget.id,
    customer_id: customer.id,
    spare_customer_id: spareCustomer.id,
    spare_app_id: spareApp.app_id,
    spare_admin_id: spareAdmin.id,
    spare_project_id: spareProject.id,
    start_time: String(now - 3_600_000),
    end_time: String(now + 60_000),
  };
}

/**
 * The world the examples of docs/device-protocol.md run in: a project whose `Thermometer` type allows
 * auto-creation (device-protocol.md §4), a customer, an HTTP device (`<access_token>`, its `target` cloud
 * attribute set), a device for the MQTT examples (device-protocol.md §3), and a gateway with a sub-device
 * at `<addr>` (device-protocol.md §8). The test connects the MQTT clients itself.
 */
export async function createDeviceProtocolFixtures(
  ctx: TestContext,
): Promise<{ values: Placeholders; ids: Record<string, string>; tokens: Record<string, string>; appToken: string }> {
  const p = await createProject(ctx, 'Device protocol');
  const api = p.api;
  const ok = async (res: Promise<ApiResponse>) => expectOk(await res);
  const withToken = (body: Record<string, unknown>) => addDeviceWithToken(p, body);
  const type = await ok(api.post('/api/v1/device_type', { name: 'Thermometer', allow_auto_create: true }));
  const gatewayType = await ok(api.post('/api/v1/device_type', { name: 'Modbus gateway', conn_type: '3' }));
  const subType = await ok(api.post('/api/v1/device_type', { name: 'Modbus meter', conn_type: '2' }));
  const customer = await ok(
    api.post('/api/v1/customer', { name: 'Alice', account: 'alice', password: 'alice-secret-1' }),
  );
  const http = await withToken({ name: 'HTTP thermometer', type: type.id });
  await ok(api.put(`/api/v1/control/device/${http.id}/attributes`, { target: 22 }));
  const mqtt = await withToken({ name: 'MQTT thermometer', type: type.id });
  const gateway = await withToken({ name: 'Gateway 1', type: gatewayType.id });
  const sub = await withToken({ name: 'Meter 1', type: subType.id });
  const addr = 'm1';
  await ok(api.post(`/api/v1/device/${gateway.id}/sub_devices`, { device: sub.id, address: addr }));
  return {
    values: {
      project_key: p.project.project_key,
      type_key: type.type_key,
      customer_id: customer.id,
      access_token: http.token,
      addr,
      ts: String(Date.now() - 60_000),
    },
    ids: { http: http.id, mqtt: mqtt.id, gateway: gateway.id, [addr]: sub.id },
    tokens: { http: http.token, mqtt: mqtt.token, gateway: gateway.token },
    appToken: p.appToken,
  };
}
