import { readFileSync } from 'node:fs';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { client, createTestApp, expectOk, type Client, type TestContext } from '../helpers/app.ts';
import { startTestBroker, type TestBroker } from '../helpers/broker.ts';
import { createDeviceProtocolFixtures, type Placeholders } from './fixtures.ts';
import { fill, parseExamples, shapeDifferences, type Example } from './markdown.ts';
import { CLOUD_SENT, parseMqttExamples, type MqttExample } from './mqtt-markdown.ts';

/**
 * Every request/answer example of docs/device-protocol.md runs against the real application and its
 * embedded broker over a real database (PGlite, or TEST_DATABASE_URL), in document order: the HTTP
 * examples (device-protocol.md §4, §5) as docs/http-api.md's are run (markdown.ts), the MQTT
 * conversations (device-protocol.md §3, §8) by real mqtt.js connections of a device and a gateway
 * (mqtt-markdown.ts states the format).
 */
const md = readFileSync(new URL('../../docs/device-protocol.md', import.meta.url), 'utf8');
const httpExamples = parseExamples(md);
const mqttExamples = parseMqttExamples(md);
const WAIT_MS = 5_000;

let ctx: TestContext;
let broker: TestBroker;
let values: Placeholders;
let ids: Record<string, string>;
let api: Client;
const clients: MqttClient[] = [];
let device: Connection;
let gateway: Connection;

/** A device connection that keeps every message it receives until an example takes it. */
interface Connection {
  client: MqttClient;
  take(topic: string, line: number): Promise<string>;
}

async function connect(token: string): Promise<Connection> {
  const c = await mqtt.connectAsync(broker.url, {
    username: token,
    password: values.project_key!,
    reconnectPeriod: 0,
    protocolVersion: 4,
  });
  clients.push(c);
  const inbox: Array<{ topic: string; payload: string }> = [];
  c.on('message', (topic, payload) => inbox.push({ topic, payload: payload.toString() }));
  return {
    client: c,
    take: (topic, line) =>
      vi.waitFor(
        () => {
          const i = inbox.findIndex((m) => m.topic === topic);
          if (i < 0)
            throw new Error(
              `line ${line}: nothing on ${topic} within ${WAIT_MS} ms; received ${JSON.stringify(inbox)}`,
            );
          return inbox.splice(i, 1)[0]!.payload;
        },
        { timeout: WAIT_MS, interval: 10 },
      ),
  };
}

beforeAll(async () => {
  ctx = await createTestApp();
  broker = await startTestBroker(ctx);
  const fx = await createDeviceProtocolFixtures(ctx);
  values = fx.values;
  ids = fx.ids;
  api = client(ctx.app, fx.appToken);
  // The HTTP device is online and answers every command it gets (the synchronous command of device-protocol.md §5.5).
  const replier = await connect(fx.tokens.http!);
  replier.client.on('message', (topic, payload) => {
    const id = /^command\/send\/(\d+)$/.exec(topic)?.[1];
    if (!id) return;
    const command = JSON.parse(payload.toString()) as { method: string };
    replier.client.publish(
      `command/reply/${id}`,
      JSON.stringify({ method: command.method, params: { ok: true }, id: Number(id) }),
      { qos: 1 },
    );
  });
  await replier.client.subscribeAsync('command/send/+', { qos: 1 });
  device = await connect(fx.tokens.mqtt!);
  gateway = await connect(fx.tokens.gateway!);
});

afterAll(async () => {
  for (const c of clients) c.end(true);
  await broker?.close();
  await ctx?.close();
});

async function runHttp(ex: Example) {
  const url = fill(ex.path, values, ex.line);
  const headers = Object.fromEntries(Object.entries(ex.headers).map(([k, v]) => [k, fill(v, values, ex.line)]));
  const payload = ex.body === undefined ? undefined : fill(ex.body, values, ex.line);
  return ctx.app.inject({ method: ex.method as 'GET', url, headers, ...(payload !== undefined ? { payload } : {}) });
}

/** Field names and JSON types as documented, and the documented `result` and `errcode` values. */
function payloadDifferences(documented: unknown, actual: unknown): string[] {
  const out = shapeDifferences(documented, actual);
  if (
    documented &&
    typeof documented === 'object' &&
    !Array.isArray(documented) &&
    actual &&
    typeof actual === 'object'
  ) {
    for (const key of ['result', 'errcode']) {
      const d = (documented as Record<string, unknown>)[key];
      const a = (actual as Record<string, unknown>)[key];
      if (d !== undefined && d !== a) out.push(`$.${key}: documented ${JSON.stringify(d)}, got ${JSON.stringify(a)}`);
    }
  }
  return out;
}

/** The project API call that makes the cloud send a push or a command (device-protocol.md §5.5, §8, §10). */
async function cloudSends(topic: string, body: Record<string, unknown>, line: number) {
  const sub = (address: unknown) => {
    const id = ids[String(address)];
    if (!id) throw new Error(`line ${line}: no sub-device at address ${JSON.stringify(address)}`);
    return id;
  };
  const wire = /^command\/send\/(\d+)$/.exec(topic);
  if (topic === 'attributes/push')
    return expectOk(await api.post(`/api/v1/control/device/${ids.mqtt}/attributes`, body));
  if (wire)
    return expectOk(
      await api.post(`/api/v1/control/device/${ids.mqtt}/command`, {
        method: body.method,
        params: body.params,
        id: Number(wire[1]),
      }),
    );
  if (topic === 'gateway/attributes/push')
    return expectOk(await api.post(`/api/v1/control/device/${sub(body.device)}/attributes`, body.attributes));
  const command = body.command as Record<string, unknown>;
  return expectOk(
    await api.post(`/api/v1/control/device/${sub(body.device)}/command`, {
      method: command.method,
      params: command.params,
      id: command.id,
    }),
  );
}

async function runMqtt(ex: MqttExample) {
  const conn = ex.gateway ? gateway : device;
  const downstream = [
    ...new Set(ex.lines.filter((l) => l.dir === 'receive').map((l) => fill(l.topic, values, l.line))),
  ];
  if (downstream.length > 0) {
    const granted = await conn.client.subscribeAsync(downstream, { qos: 1 });
    expect(granted.map((g) => [g.topic, g.qos])).toEqual(downstream.map((t) => [t, 1]));
  }
  for (const l of ex.lines) {
    const topic = fill(l.topic, values, l.line);
    const text = fill(l.payload, values, l.line);
    const documented: unknown = JSON.parse(text);
    if (l.dir === 'send') {
      await conn.client.publishAsync(topic, text, { qos: 1 });
      continue;
    }
    if (CLOUD_SENT.test(topic)) await cloudSends(topic, documented as Record<string, unknown>, l.line);
    const got = await conn.take(topic, l.line);
    let actual: unknown;
    try {
      actual = JSON.parse(got);
    } catch {
      throw new Error(`line ${l.line}: ${topic} carried no JSON: ${got.slice(0, 200)}`);
    }
    expect(payloadDifferences(documented, actual), `line ${l.line}: ${topic} ${got.slice(0, 1000)}`).toEqual([]);
  }
}

describe('docs/device-protocol.md examples', () => {
  it('has HTTP and MQTT examples', () => {
    expect(httpExamples.length).toBeGreaterThanOrEqual(5);
    expect(mqttExamples.length).toBeGreaterThanOrEqual(3);
    expect(mqttExamples.some((e) => e.gateway)).toBe(true);
  });

  for (const ex of httpExamples) {
    it(`line ${ex.line}: ${ex.method} ${ex.path}`, async () => {
      expect(ex.response.kind, 'the device API answers JSON: a json block follows each http example').toBe('json');
      const res = await runHttp(ex);
      expect(res.statusCode, res.body.slice(0, 500)).toBe(ex.response.status);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      const documented: unknown = JSON.parse(fill(ex.response.text, values, ex.response.line));
      expect(payloadDifferences(documented, res.json()), res.body.slice(0, 2000)).toEqual([]);
    });
  }

  for (const ex of mqttExamples) {
    const first = ex.lines[0]!;
    it(`line ${ex.line}: mqtt ${first.dir === 'send' ? '>' : '<'} ${first.topic}`, async () => {
      await runMqtt(ex);
    });
  }
});
