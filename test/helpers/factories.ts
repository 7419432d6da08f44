import type { DeviceSession, Transport } from '../../src/domain/delivery/sessions.ts';
import type { DeviceIdentity } from '../../src/domain/devices/device-identity.ts';
import type { DomainEvents } from '../../src/domain/events/event-bus.ts';
import type { Services } from '../../src/composition/services.ts';
import { customerDevices, customers } from '../../src/db/schema/index.ts';
import { newId } from '../../src/lib/ids.ts';
import { hashSecret } from '../../src/lib/passwords.ts';
import { client, deviceWithToken, expectOk, type Client, type ProjectFixture, type TestContext } from './app.ts';

/**
 * Device types, devices and device sessions for tests, made through the project API (or, for
 * sessions and events, the services) the way an integrator or the broker makes them.
 */

/** The body of POST /api/v1/device; a `type` that is undefined, null or '' is not sent (an untyped device). */
export type DeviceBody = Record<string, unknown> & { name?: string; type?: string | null };

function deviceBody({ type, ...rest }: DeviceBody): Record<string, unknown> {
  return { ...rest, ...(type ? { type } : {}) };
}

/** Creates a device type (POST /api/v1/device_type with `body`), then each of its data streams. */
export async function addDeviceType(
  api: Client,
  body: Record<string, unknown>,
  streams: Array<Record<string, unknown>> = [],
): Promise<{ id: string; name: string; type_key: string }> {
  const t = expectOk(await api.post('/api/v1/device_type', body));
  for (const s of streams) expectOk(await api.post(`/api/v1/device_type/${t.id}/data_stream`, s));
  return t;
}

/** Creates a device (POST /api/v1/device); what the API answers: its id and name. */
export async function addDevice(api: Client, body: DeviceBody = { name: 'd' }): Promise<{ id: string; name: string }> {
  return expectOk(await api.post('/api/v1/device', deviceBody(body)));
}

/** Creates a device and reads its access token (GET /api/v1/device/:id/certificate). */
export async function addDeviceWithToken(
  p: ProjectFixture,
  body: DeviceBody = { name: 'd' },
): Promise<{ id: string; token: string }> {
  return deviceWithToken(p, deviceBody(body));
}

/** Creates a device, reads its token and logs it in as the broker does: the identity its reports go out under. */
export async function addAuthenticatedDevice(
  ctx: TestContext,
  p: ProjectFixture,
  body: DeviceBody = { name: 'd' },
): Promise<{ id: string; token: string; identity: DeviceIdentity }> {
  const d = await addDeviceWithToken(p, body);
  const identity = await ctx.services.deviceAuth.authenticate(p.project.project_key, d.token);
  if (!identity) throw new Error(`device ${d.id} does not authenticate`);
  return { ...d, identity };
}

/** The identity of an enabled direct device (connection type "1"), as authentication makes it, without a login. */
export function directIdentity(
  projectId: string,
  d: { id: string; name: string; type?: string | null | undefined },
): DeviceIdentity {
  return { deviceId: d.id, projectId, name: d.name, typeId: d.type ?? null, connType: '1', disabled: false };
}

/**
 * "Connects" a device the way the broker does: a session in the registry that records what is sent to it;
 * `onSend` sees each send first (it may throw, as a failing transport would).
 */
export function attachSession(
  services: Services,
  device: { deviceId: string; projectId: string },
  /** `onSend` sees each publish; a promise it returns is awaited, like a transport's slow write. */
  opts: { transport?: Transport; onSend?: (topic: string, payload: Buffer) => void | Promise<unknown> } = {},
) {
  const sent: Array<{ topic: string; payload: Buffer }> = [];
  const session: DeviceSession = {
    deviceId: device.deviceId,
    projectId: device.projectId,
    transport: opts.transport ?? 'mqtt',
    send: async (topic, payload) => {
      await opts.onSend?.(topic, payload);
      sent.push({ topic, payload });
    },
    close: () => {},
  };
  services.sessions.attach(session);
  return { sent, disconnect: () => services.sessions.detach(session) };
}

/** Every `name` event of the bus from now on; `off()` stops recording. */
export function captureEvents<K extends keyof DomainEvents>(services: Services, name: K) {
  const seen: DomainEvents[K][] = [];
  const off = services.bus.on(name, (e) => seen.push(e));
  return { seen, off };
}

/**
 * A customer of the project written straight into the database (so a test does not depend on the customers API),
 * bound to `deviceIds`, logged in through customer_login: a client with its token.
 */
export async function addCustomerClient(
  ctx: TestContext,
  f: ProjectFixture,
  deviceIds: string[] = [],
): Promise<Client> {
  const id = newId();
  const account = `cust-${id}`;
  const now = Date.now();
  await ctx.database.db.insert(customers).values({
    id,
    projectId: f.project.id,
    account,
    passwordHash: await hashSecret('customer-password'),
    name: 'customer',
    createTime: now,
    updateTime: now,
  });
  for (const deviceId of deviceIds) {
    await ctx.database.db
      .insert(customerDevices)
      .values({ customerId: id, deviceId, projectId: f.project.id, createTime: now });
  }
  const login = expectOk(
    await client(ctx.app).post('/api/v1/customer_login', {
      app_id: f.project.app.app_id,
      account,
      password: 'customer-password',
    }),
  );
  return client(ctx.app, login.access_token as string);
}
