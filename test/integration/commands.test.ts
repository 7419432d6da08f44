import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServices, type Services } from '../../src/composition/services.ts';
import {
  client,
  createProject,
  createTestApp,
  expectFailure,
  expectOk,
  type ApiResponse,
  type ProjectFixture,
  type TestContext,
} from '../helpers/app.ts';
import { addDeviceWithToken, attachSession } from '../helpers/factories.ts';

let ctx: TestContext;
let p: ProjectFixture;

beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx);
});
afterAll(() => ctx?.close());

interface Device {
  id: string;
  token: string;
  identity: { deviceId: string; projectId: string };
}

async function newDevice(f: ProjectFixture = p): Promise<Device> {
  const d = await addDeviceWithToken(f, { name: 'commanded' });
  return { ...d, identity: { deviceId: d.id, projectId: f.project.id } };
}

interface Published {
  topic: string;
  body: unknown;
}

/**
 * "Connects" a device the way the broker will: a session in the registry that records what is
 * published to it. `onSend` sees each publish (e.g. to answer it like a device would).
 */
function connect(
  device: Device,
  opts: { services?: Services; onSend?: (m: Published) => void | Promise<unknown>; fail?: string } = {},
) {
  const sent: Published[] = [];
  const session = attachSession(opts.services ?? ctx.services, device.identity, {
    onSend: (topic, payload) => {
      if (opts.fail) throw new Error(opts.fail);
      const m = { topic, body: JSON.parse(payload.toString('utf8')) as unknown };
      sent.push(m);
      return opts.onSend?.(m);
    },
  });
  return { sent, disconnect: session.disconnect };
}

const command = (d: Device, body: unknown, api = p.api) => api.post(`/api/v1/control/device/${d.id}/command`, body);
const log = async (d: Device, api = p.api, query = '') =>
  expectOk(await api.get(`/api/v1/device/${d.id}/commands${query}`));
/** An application-side call keyed by the device token; `projectKey: null` sends no Project-Key header. */
const appSide = (
  d: Device,
  path: string,
  body: unknown,
  projectKey: string | null = p.project.project_key,
): Promise<ApiResponse> =>
  client(ctx.app).call(
    'POST',
    `/app/device/v1/${d.token}/${path}`,
    body,
    projectKey === null ? {} : { 'project-key': projectKey },
  );

describe('sending to an online device', () => {
  it('stores the command, publishes command/send/<id> with {method, params, id} and answers the stored command', async () => {
    const d = await newDevice();
    const live = connect(d);
    const before = Date.now();
    const info = expectOk(await command(d, { method: 'setLed', params: { led: 'ON', level: 3 } }));
    expect(info).toEqual({
      id: expect.any(String),
      command_id: 1,
      method: 'setLed',
      params: { led: 'ON', level: 3 },
      state: 'sent',
      reply: null,
      error: null,
      create_time: expect.any(Number),
      sent_time: expect.any(Number),
      reply_time: null,
      expire_time: null,
    });
    expect(info.create_time).toBeGreaterThanOrEqual(before);
    expect(info.sent_time).toBeGreaterThanOrEqual(info.create_time);
    expect(live.sent).toEqual([
      { topic: 'command/send/1', body: { method: 'setLed', params: { led: 'ON', level: 3 }, id: 1 } },
    ]);

    const second = expectOk(await command(d, { method: 'reboot' }));
    expect(second.command_id).toBe(2);
    expect(live.sent[1]).toEqual({ topic: 'command/send/2', body: { method: 'reboot', params: {}, id: 2 } });
    const explicit = expectOk(await command(d, { method: 'open', params: {}, id: 1000 }));
    expect(explicit.command_id).toBe(1000);
    expect(live.sent[2]!.topic).toBe('command/send/1000');
    expect(expectOk(await command(d, { method: 'next' })).command_id).toBe(1001);
    live.disconnect();
  });

  it('stores the reply matched by id, marks the command replied, records activity and emits the event', async () => {
    const d = await newDevice();
    const live = connect(d);
    const events: unknown[] = [];
    const off = ctx.services.bus.on('device.command_reply', (e) => events.push(e));
    const first = expectOk(await command(d, { method: 'read', params: { reg: 1 } }));
    const second = expectOk(await command(d, { method: 'read', params: { reg: 2 } }));

    const matched = await ctx.services.commands.reply(d.identity, second.command_id, {
      method: 'read',
      params: { value: 42 },
      id: second.command_id,
    });
    expect(matched).toBe(true);
    expect(await ctx.services.commands.reply(d.identity, second.command_id, { method: 'read', params: {} })).toBe(
      false,
    );
    expect(await ctx.services.commands.reply(d.identity, 999, { method: 'read', params: {} })).toBe(false);
    off();

    const { items, total } = await log(d);
    expect(total).toBe(2);
    expect(items.map((c: { id: string }) => c.id)).toEqual([second.id, first.id]);
    expect(items[0]).toEqual({
      ...second,
      state: 'replied',
      reply: { method: 'read', params: { value: 42 } },
      reply_time: expect.any(Number),
    });
    expect(items[0].reply_time).toBeGreaterThanOrEqual(second.sent_time);
    expect(items[1]).toEqual(first);
    expect(events).toEqual([
      {
        projectId: p.project.id,
        deviceId: d.id,
        commandId: second.id,
        seq: second.command_id,
        method: 'read',
        params: { value: 42 },
        ts: items[0].reply_time,
      },
    ]);

    // Every reply is activity, matched or not: the latest one counts.
    await ctx.services.presence.flush();
    expect(expectOk(await p.api.get(`/api/v1/device/${d.id}`)).active.command_reply).toBeGreaterThanOrEqual(
      items[0].reply_time,
    );
    live.disconnect();
  });

  it("keeps the command's method when the reply has none, and stores empty params when it sends none", async () => {
    const d = await newDevice();
    const live = connect(d);
    const c = expectOk(await command(d, { method: 'ping' }));
    expect(await ctx.services.commands.reply(d.identity, c.command_id, {})).toBe(true);
    expect((await log(d)).items[0].reply).toEqual({ method: 'ping', params: {} });
    live.disconnect();
  });

  it('does not match a reply from another device that uses the same id', async () => {
    const d = await newDevice();
    const other = await newDevice();
    const live = connect(d);
    const c = expectOk(await command(d, { method: 'x', id: 7 }));
    expect(await ctx.services.commands.reply(other.identity, 7, { params: {} })).toBe(false);
    expect((await log(d)).items[0].state).toBe('sent');
    expect(c.state).toBe('sent');
    live.disconnect();
  });

  it('answers 409 for an id still open on the device, and allows it again once the command is replied', async () => {
    const d = await newDevice();
    const live = connect(d);
    expectOk(await command(d, { method: 'a', id: 5 }));
    const dup = expectFailure(await command(d, { method: 'b', id: 5 }), 409);
    expect(dup.errors).toEqual([{ path: 'id', message: 'already open' }]);
    expect(live.sent).toHaveLength(1);
    expect(await ctx.services.commands.reply(d.identity, 5, { params: { ok: true } })).toBe(true);
    expect(expectOk(await command(d, { method: 'b', id: 5 })).state).toBe('sent');
    expect((await log(d)).total).toBe(2);
    live.disconnect();
  });

  it('marks the command failed and answers 422 when the session cannot publish', async () => {
    const d = await newDevice();
    const live = connect(d, { fail: 'socket closed' });
    const body = expectFailure(await command(d, { method: 'x' }), 422);
    expect(body.message).toBe('Sending to the device failed: socket closed');
    const [row] = (await log(d)).items;
    expect(row).toMatchObject({ state: 'failed', error: 'send failed: socket closed', method: 'x' });
    live.disconnect();
  });

  it('keeps a command with a time to live queued when the publish fails, for the next connect', async () => {
    const d = await newDevice();
    const broken = connect(d, { fail: 'socket closed' });
    const info = expectOk(await command(d, { method: 'x', ttl: 600 }));
    expect(info).toMatchObject({ state: 'queued', sent_time: null });
    broken.disconnect();
    const live = connect(d);
    expect(await ctx.services.commands.deliverQueued(d.identity)).toBe(1);
    expect(live.sent).toEqual([
      { topic: `command/send/${info.command_id}`, body: { method: 'x', params: {}, id: info.command_id } },
    ]);
    live.disconnect();
  });
});

describe('offline devices', () => {
  it('answers 422 "Device is offline" without a time to live, and logs the command as failed', async () => {
    const d = await newDevice();
    const body = expectFailure(await command(d, { method: 'reboot', params: { delay: 1 } }), 422);
    expect(body.message).toBe('Device is offline');
    const { items } = await log(d);
    expect(items).toEqual([
      {
        id: expect.any(String),
        command_id: 1,
        method: 'reboot',
        params: { delay: 1 },
        state: 'failed',
        reply: null,
        error: 'device offline',
        create_time: expect.any(Number),
        sent_time: null,
        reply_time: null,
        expire_time: null,
      },
    ]);
  });

  it('queues a command with a time to live and delivers the queue in order when the device connects', async () => {
    const d = await newDevice();
    const before = Date.now();
    const a = expectOk(await command(d, { method: 'first', params: { n: 1 }, ttl: 3600 }));
    const b = expectOk(await command(d, { method: 'second', params: { n: 2 }, ttl: 60, id: 77 }));
    const c = expectOk(await command(d, { method: 'third', ttl: 60 }));
    expect(a).toMatchObject({ state: 'queued', command_id: 1, sent_time: null });
    expect(a.expire_time).toBeGreaterThanOrEqual(before + 3_600_000);
    expect(a.expire_time).toBeLessThanOrEqual(Date.now() + 3_600_000);
    expect(c.command_id).toBe(78);

    const live = connect(d);
    expect(await ctx.services.commands.deliverQueued(d.identity)).toBe(3);
    expect(live.sent).toEqual([
      { topic: 'command/send/1', body: { method: 'first', params: { n: 1 }, id: 1 } },
      { topic: 'command/send/77', body: { method: 'second', params: { n: 2 }, id: 77 } },
      { topic: 'command/send/78', body: { method: 'third', params: {}, id: 78 } },
    ]);
    const { items } = await log(d);
    expect(items.map((i: { state: string }) => i.state)).toEqual(['sent', 'sent', 'sent']);
    expect(items.find((i: { id: string }) => i.id === b.id).sent_time).toBeGreaterThanOrEqual(b.create_time);
    expect(await ctx.services.commands.deliverQueued(d.identity)).toBe(0);
    expect(live.sent).toHaveLength(3);
    expect(await ctx.services.commands.reply(d.identity, 77, { method: 'second', params: { done: true } })).toBe(true);
    live.disconnect();
  });

  it('expires a queued command whose time to live ran out, and never delivers it', async () => {
    const d = await newDevice();
    const c = expectOk(await command(d, { method: 'late', ttl: 1 }));
    await ctx.services.commands.sweep(c.expire_time - 1);
    expect((await log(d)).items[0].state).toBe('queued');
    await ctx.services.commands.sweep(c.expire_time);
    expect((await log(d)).items[0]).toMatchObject({
      state: 'expired',
      error: 'expired before the device connected',
      sent_time: null,
    });
    const live = connect(d);
    expect(await ctx.services.commands.deliverQueued(d.identity)).toBe(0);
    expect(live.sent).toEqual([]);
    live.disconnect();
  });

  it('expires stale queued commands on connect even before the sweeper runs', async () => {
    const d = await newDevice();
    const clock = { now: Date.now() };
    const services = createServices({ db: ctx.database.db, clock: () => clock.now });
    const stale = await services.commands.send({ projectId: p.project.id }, d.id, { method: 'stale', ttl: 1 });
    const fresh = await services.commands.send({ projectId: p.project.id }, d.id, { method: 'fresh', ttl: 10 });
    clock.now += 5_000;
    const live = connect(d, { services });
    expect(await services.commands.deliverQueued(d.identity)).toBe(1);
    expect(live.sent.map((m) => m.topic)).toEqual([`command/send/${fresh.command_id}`]);
    const states = Object.fromEntries((await log(d)).items.map((i: { id: string; state: string }) => [i.id, i.state]));
    expect(states).toEqual({ [stale.id]: 'expired', [fresh.id]: 'sent' });
  });

  it('survives a restart: a new service over the same database delivers the queued command on connect', async () => {
    const d = await newDevice();
    const queued = expectOk(
      await command(d, { method: 'configure', params: { interval: 60, mode: 'eco' }, ttl: 3600, timeout: 120 }),
    );
    const restarted = createServices({ db: ctx.database.db });
    const live = connect(d, { services: restarted });
    expect(await restarted.commands.deliverQueued(d.identity)).toBe(1);
    expect(live.sent).toEqual([
      {
        topic: `command/send/${queued.command_id}`,
        body: { method: 'configure', params: { interval: 60, mode: 'eco' }, id: queued.command_id },
      },
    ]);
    const [row] = (await log(d)).items;
    expect(row).toEqual({ ...queued, state: 'sent', sent_time: expect.any(Number) });
    expect(
      await restarted.commands.reply(d.identity, queued.command_id, { method: 'configure', params: { ok: 1 } }),
    ).toBe(true);
    expect((await log(d)).items[0]).toMatchObject({
      state: 'replied',
      reply: { method: 'configure', params: { ok: 1 } },
    });
  });

  it('delivers nothing when the device has no live session', async () => {
    const d = await newDevice();
    expectOk(await command(d, { method: 'x', ttl: 60 }));
    expect(await ctx.services.commands.deliverQueued(d.identity)).toBe(0);
    expect((await log(d)).items[0].state).toBe('queued');
  });
});

describe('reply timeouts', () => {
  it('times out a sent command with no reply after its timeout, and refuses a late reply', async () => {
    const d = await newDevice();
    const live = connect(d);
    const c = expectOk(await command(d, { method: 'slow', timeout: 2 }));
    const other = expectOk(await command(d, { method: 'patient', timeout: 60 }));
    await ctx.services.commands.sweep(c.sent_time + 1_999);
    expect((await log(d)).items.map((i: { state: string }) => i.state)).toEqual(['sent', 'sent']);
    await ctx.services.commands.sweep(c.sent_time + 2_000);
    const byId = Object.fromEntries((await log(d)).items.map((i: { id: string }) => [i.id, i]));
    expect(byId[c.id]).toMatchObject({
      state: 'timeout',
      error: 'no reply within the timeout',
      reply: null,
      reply_time: null,
    });
    expect(byId[other.id].state).toBe('sent');
    expect(await ctx.services.commands.reply(d.identity, c.command_id, { params: {} })).toBe(false);
    expect((await log(d)).items.find((i: { id: string }) => i.id === c.id).state).toBe('timeout');
    live.disconnect();
  });

  it('runs the sweeper on a timer once started, and stops it', async () => {
    const d = await newDevice();
    const clock = { now: Date.now() };
    const services = createServices({ db: ctx.database.db, clock: () => clock.now });
    const live = connect(d, { services });
    const c = await services.commands.send({ projectId: p.project.id }, d.id, { method: 'x', timeout: 1 });
    clock.now += 1_000;
    services.commands.start();
    try {
      await expect.poll(async () => (await log(d)).items[0].state, { timeout: 5_000, interval: 50 }).toBe('timeout');
    } finally {
      await services.commands.stop();
    }
    expect(c.state).toBe('sent');
    live.disconnect();
  });
});

describe('synchronous send', () => {
  it('waits for the reply the device sends asynchronously and answers the replied command', async () => {
    const d = await newDevice();
    connect(d, {
      onSend: (m) => {
        const body = m.body as { method: string; id: number };
        setTimeout(
          () =>
            void ctx.services.commands.reply(d.identity, body.id, {
              method: body.method,
              params: { temp: 21.5 },
              id: body.id,
            }),
          20,
        );
      },
    });
    const info = expectOk(await appSide(d, 'command/sync/send', { method: 'measure', params: { unit: 'C' } }));
    expect(info).toMatchObject({
      method: 'measure',
      params: { unit: 'C' },
      state: 'replied',
      reply: { method: 'measure', params: { temp: 21.5 } },
    });
    expect(info.reply_time).toBeGreaterThanOrEqual(info.sent_time);
    ctx.services.sessions.kick(d.id, 'test over');
  });

  it('gets a reply that is stored before the publish returns', async () => {
    const d = await newDevice();
    connect(d, {
      // The publish returns only once the reply is stored: the reply comes before send() does.
      onSend: (m) => {
        const body = m.body as { id: number };
        return ctx.services.commands.reply(d.identity, body.id, { params: { fast: true } });
      },
    });
    const info = expectOk(await appSide(d, 'command/sync/send', { method: 'quick', wait: 30 }));
    expect(info).toMatchObject({ state: 'replied', reply: { method: 'quick', params: { fast: true } } });
    ctx.services.sessions.kick(d.id, 'test over');
  });

  it('answers the timeout state when no reply comes within the timeout', async () => {
    const d = await newDevice();
    const live = connect(d);
    const started = Date.now();
    const info = expectOk(await appSide(d, 'command/sync/send', { method: 'silent', timeout: 1 }));
    expect(info).toMatchObject({ state: 'timeout', reply: null });
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(live.sent).toHaveLength(1);
    live.disconnect();
  });

  it('answers timeout after the whole reply timeout even when the send itself was slow', async () => {
    const d = await newDevice();
    const live = connect(d);
    // Finding the session takes a while (another node's directory, a busy database) before the command
    // is marked sent: the wait counts from the send, so it still reaches the reply deadline.
    const sessions = ctx.services.sessions;
    const locate = sessions.locate.bind(sessions);
    sessions.locate = async (id) => {
      await new Promise((r) => setTimeout(r, 400));
      return locate(id);
    };
    try {
      const info = expectOk(await appSide(d, 'command/sync/send', { method: 'slow', timeout: 1 }));
      expect(info).toMatchObject({ state: 'timeout', reply: null });
    } finally {
      sessions.locate = locate;
      live.disconnect();
    }
  });

  it('is woken by the sweeper when the command times out', async () => {
    const d = await newDevice();
    let published!: () => void;
    const publishedOnce = new Promise<void>((r) => (published = r));
    const live = connect(d, { onSend: () => published() });
    const pending = ctx.services.commands.sendSync(
      { projectId: p.project.id },
      d.id,
      { method: 'x', timeout: 5 },
      60_000,
    );
    await publishedOnce;
    const sentTime = (await log(d)).items[0].sent_time as number;
    await ctx.services.commands.sweep(sentTime + 5_000);
    const info = await pending;
    expect(info).toMatchObject({ state: 'timeout' });
    live.disconnect();
  });

  it('returns the state reached when a shorter wait ends before the reply timeout', async () => {
    const d = await newDevice();
    const live = connect(d);
    const info = expectOk(await appSide(d, 'command/sync/send', { method: 'x', timeout: 60, wait: 1 }));
    expect(info.state).toBe('sent');
    live.disconnect();
  });

  it('answers 422 for an offline device', async () => {
    const d = await newDevice();
    expect(expectFailure(await appSide(d, 'command/sync/send', { method: 'x' }), 422).message).toBe(
      'Device is offline',
    );
  });
});

describe('application-side send by device token', () => {
  it('sends a command to the device of the token', async () => {
    const d = await newDevice();
    const live = connect(d);
    const info = expectOk(await appSide(d, 'command/send', { method: 'beep', params: { times: 2 }, id: 3 }));
    expect(info).toMatchObject({ command_id: 3, method: 'beep', params: { times: 2 }, state: 'sent' });
    expect(live.sent).toEqual([{ topic: 'command/send/3', body: { method: 'beep', params: { times: 2 }, id: 3 } }]);
    expect((await log(d)).items[0].id).toBe(info.id);
    live.disconnect();
  });

  it('answers 401 for a wrong or missing Project-Key and an unknown token', async () => {
    const d = await newDevice();
    const other = await createProject(ctx, 'other key');
    for (const path of ['command/send', 'command/sync/send']) {
      expectFailure(await appSide(d, path, { method: 'x' }, other.project.project_key), 401);
      expectFailure(await appSide(d, path, { method: 'x' }, null), 401);
      expectFailure(await appSide({ ...d, token: 'no-such-token' }, path, { method: 'x' }), 401);
    }
    expect((await log(d)).total).toBe(0);
  });

  it('answers 400 for bad bodies', async () => {
    const d = await newDevice();
    expectFailure(await appSide(d, 'command/send', { params: {} }), 400);
    expectFailure(await appSide(d, 'command/sync/send', { method: 'x', wait: 61 }), 400);
    expectFailure(await appSide(d, 'command/sync/send', { method: 'x', wait: 0 }), 400);
  });
});

describe('access and validation', () => {
  it("answers 404 for another project's device, on send and on the log", async () => {
    const other = await createProject(ctx, 'foreign');
    const foreign = await newDevice(other);
    const live = connect(foreign);
    expectFailure(await command(foreign, { method: 'x' }), 404);
    expectFailure(await p.api.get(`/api/v1/device/${foreign.id}/commands`), 404);
    expectFailure(await command({ ...foreign, id: 'no-such-device' }, { method: 'x' }), 404);
    expect(live.sent).toEqual([]);
    expect((await log(foreign, other.api)).total).toBe(0);
    live.disconnect();
  });

  it('lets a customer read the log of a bound device only, and refuses sending with 403', async () => {
    const f = await createProject(ctx, 'customer commands');
    const bound = await newDevice(f);
    const unbound = await newDevice(f);
    const live = connect(bound);
    expectOk(await command(bound, { method: 'x' }, f.api));
    const customer = expectOk(
      await f.api.post('/api/v1/customer', { name: 'Carol', account: 'carol', password: 'password-carol' }),
    );
    expectOk(await f.api.post(`/api/v1/customer/${customer.id}/devices`, { devices: [bound.id] }));
    const login = expectOk(
      await client(ctx.app).post('/api/v1/customer_login', {
        app_id: f.project.app.app_id,
        account: 'carol',
        password: 'password-carol',
      }),
    );
    const own = client(ctx.app, login.access_token);
    expectFailure(await command(bound, { method: 'y' }, own), 403);
    const seen = await log(bound, own);
    expect(seen.items.map((i: { method: string }) => i.method)).toEqual(['x']);
    expectFailure(await own.get(`/api/v1/device/${unbound.id}/commands`), 404);
    expect(live.sent).toHaveLength(1);
    live.disconnect();
  });

  it('answers 400 for invalid bodies and stores nothing', async () => {
    const d = await newDevice();
    const live = connect(d);
    const bad: unknown[] = [
      {},
      { method: '' },
      { method: 'x'.repeat(65) },
      { method: 5 },
      { method: 'x', params: [1, 2] },
      { method: 'x', params: 'on' },
      { method: 'x', params: { big: 'y'.repeat(70_000) } },
      { method: 'x', id: 0 },
      { method: 'x', id: 1.5 },
      { method: 'x', id: 2_147_483_648 },
      { method: 'x', ttl: 0 },
      { method: 'x', ttl: 30 * 24 * 3600 + 1 },
      { method: 'x', timeout: 0 },
      { method: 'x', timeout: 3601 },
    ];
    for (const body of bad) expectFailure(await command(d, body), 400);
    expect(expectFailure(await command(d, { method: 'x', id: 0 }), 400).errors[0].path).toBe('id');
    expect(live.sent).toEqual([]);
    expect((await log(d)).total).toBe(0);
    expectFailure(await p.api.get(`/api/v1/device/${d.id}/commands?page_records=101`), 400);
    expectFailure(await p.api.get(`/api/v1/device/${d.id}/commands?page=0`), 400);
    live.disconnect();
  });

  it('accepts the largest id and ttl', async () => {
    const d = await newDevice();
    const c = expectOk(await command(d, { method: 'x', id: 2_147_483_647, ttl: 30 * 24 * 3600, timeout: 3600 }));
    expect(c).toMatchObject({ command_id: 2_147_483_647, state: 'queued' });
    // The next allocated id wraps around.
    expect(expectOk(await command(d, { method: 'y', ttl: 60 })).command_id).toBe(1);
  });

  it('pages the log newest first', async () => {
    const d = await newDevice();
    const live = connect(d);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push(expectOk(await command(d, { method: `m${i}` })).id);
      await new Promise((r) => setTimeout(r, 2));
    }
    const first = await log(d, p.api, '?page=1&page_records=2');
    expect(first).toMatchObject({ total: 5, page_total: 3 });
    expect(first.items.map((i: { id: string }) => i.id)).toEqual([ids[4], ids[3]]);
    const last = await log(d, p.api, '?page=3&page_records=2');
    expect(last.items.map((i: { id: string }) => i.id)).toEqual([ids[0]]);
    expect(last.total).toBe(5);
    expect((await log(d, p.api, '?page=4&page_records=2')).items).toEqual([]);
    live.disconnect();
  });
});
