import net, { type AddressInfo } from 'node:net';
import WebSocket from 'ws';
import { once } from 'node:events';
import mqttPacket from 'mqtt-packet';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDevice, nextOn } from '../helpers/mqtt.ts';
import { connectPacket } from '../helpers/raw-mqtt.ts';
import { until } from '../helpers/wait.ts';
import { attachWebSocket } from '../../mqtt-broker/mqtt/websocket.ts';
import { startTestBroker, type TestBroker } from '../helpers/broker.ts';
import { createProject, createTestApp, deviceWithToken, type TestContext } from '../helpers/app.ts';

/**
 * A device that stops reading its connection is its own problem (docs/device-protocol.md §2, "A device that
 * does not read"): what the broker has for it waits in that connection's buffer, never in a queue every device
 * shares, and a connection whose unsent output passes its bound is closed.
 */
let ctx: TestContext;
let tb: TestBroker;
const clients: MqttClient[] = [];
/** Ends the raw links the tests opened. */
const links: Array<() => void> = [];
let httpPort = 0;
let closeWebSocket: (() => Promise<void>) | undefined;

beforeAll(async () => {
  ctx = await createTestApp(
    { METRICS_TOKEN: 'm'.repeat(32) },
    { settings: { deviceRateLimit: 5_000, deviceRateLimitMax: 5_000 } },
  );
  tb = await startTestBroker(ctx, { maxPendingOutputBytes: 4 * 1024 * 1024 });
  await ctx.app.listen({ port: 0, host: '127.0.0.1' });
  httpPort = (ctx.app.server.address() as AddressInfo).port;
  closeWebSocket = attachWebSocket(ctx.app.server, tb.broker);
});
afterAll(async () => {
  for (const end of links) end();
  await closeWebSocket?.();
  for (const c of clients) c.end(true);
  await tb?.close();
  await ctx?.close();
});

/** Attributes of ~40 KB, so each answer to `attributes/get` is that big. */
const BIG = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`a${i}`, 'x'.repeat(2_000)]));
const ANSWER_BYTES = 40_000;
const REQUESTS = 600;

/** One MQTT connection as bytes, over TCP or WebSocket, whose reading can be stopped. */
interface Link {
  write(b: Buffer): void;
  onData(listener: (b: Buffer) => void): void;
  offData(listener: (b: Buffer) => void): void;
  pause(): void;
  resume(): void;
  closed: Promise<unknown>;
}

async function tcpLink(port = tb.port): Promise<Link> {
  const socket = net.connect(port, '127.0.0.1');
  links.push(() => socket.destroy());
  socket.on('error', () => {});
  await once(socket, 'connect');
  return {
    write: (b) => void socket.write(b),
    onData: (l) => void socket.on('data', l),
    offData: (l) => void socket.off('data', l),
    pause: () => void socket.pause(),
    resume: () => void socket.resume(),
    closed: once(socket, 'close'),
  };
}

async function webSocketLink(): Promise<Link> {
  const ws = new WebSocket(`ws://127.0.0.1:${httpPort}/mqtt`, 'mqtt');
  links.push(() => ws.terminate());
  ws.on('error', () => {});
  await once(ws, 'open');
  return {
    write: (b) => ws.send(b),
    onData: (l) => void ws.on('message', l),
    offData: (l) => void ws.off('message', l),
    pause: () => ws.pause(),
    resume: () => ws.resume(),
    closed: once(ws, 'close'),
  };
}

/**
 * A device that subscribes to the answers of `attributes/get`, then stops reading and asks for its (big)
 * attributes `requests` times: each answer is written towards a connection that takes nothing.
 */
async function stalledReader(link: Link, token: string, projectKey: string, requests: number) {
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const seen = new Set<string>();
  parser.on('packet', (p: { cmd: string }) => seen.add(p.cmd));
  const onData = (b: Buffer) => parser.parse(b);
  link.onData(onData);
  link.write(connectPacket('slow-reader', token, projectKey, 600));
  link.write(
    mqttPacket.generate({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [{ topic: 'attributes/get/response/+', qos: 0 }],
    }),
  );
  for (let waited = 0; !seen.has('suback'); waited += 10) {
    if (waited > 10_000) throw new Error('no SUBACK within 10 s');
    await new Promise((r) => setTimeout(r, 10));
  }
  let received = 0;
  // From here on nothing is read: the kernel's buffers fill, then the server's.
  link.offData(onData);
  link.pause();
  for (let i = 0; i < requests; i++)
    link.write(
      mqttPacket.generate({
        cmd: 'publish',
        topic: `attributes/get/${i}`,
        payload: Buffer.from('{}'),
        qos: 0,
        retain: false,
        dup: false,
      }),
    );
  return {
    /**
     * Reads again, counting the bytes, until the connection ends. A paused connection learns that the broker
     * closed it once it reads again: what had reached it, then the end; had the connection been left open, it
     * would now take every answer and stay open.
     */
    async readToEnd(): Promise<number> {
      link.onData((b: Buffer) => (received += b.length));
      link.resume();
      await Promise.race([
        link.closed,
        new Promise((_, reject) => setTimeout(() => reject(new Error('the stalled reader was not closed')), 10_000)),
      ]);
      return received;
    },
  };
}

/** A device of a project of its own whose attributes are BIG. */
async function deviceWithBigAttributes(name: string) {
  const project = await createProject(ctx, name);
  const device = await deviceWithToken(project);
  const setup = await connectDevice(tb.url, { token: device.token, projectKey: project.project.project_key });
  await setup.publishAsync('attributes', JSON.stringify(BIG), { qos: 1 });
  await setup.endAsync();
  return { token: device.token, projectKey: project.project.project_key };
}

/**
 * Waits until the broker has closed a connection for not reading (the counter passed `before`): only then does the
 * reader read again, or the answers still on their way would drain into it and nothing would need closing.
 */
async function closedForNotReading(before: number) {
  await until(async () => (await droppedForBackpressure()) > before, 'the broker to close the stalled reader', {
    timeout: 15_000,
    interval: 50,
  });
}

/** iot_messages_dropped_total{transport="mqtt",reason="backpressure"} now. */
async function droppedForBackpressure(): Promise<number> {
  const { values } = await ctx.metrics!.registry.getSingleMetric('iot_messages_dropped_total')!.get();
  return values.find((v) => v.labels.transport === 'mqtt' && v.labels.reason === 'backpressure')?.value ?? 0;
}

describe('a device that does not read', () => {
  it("stalls no other project's reports, and is closed once its unsent output passes the bound", async () => {
    const slow = await deviceWithBigAttributes('slow');
    const calmProject = await createProject(ctx, 'calm');
    const calm = await deviceWithToken(calmProject);

    const good = await connectDevice(
      tb.url,
      { token: calm.token, projectKey: calmProject.project.project_key },
      {},
      clients,
    );
    // 600 answers of ~40 KB (~24 MB) are more than a loopback connection's buffers take, so at least a hundred
    // of them wait to be written: as many as Aedes' shared queue lets be in flight by default.
    const before = await droppedForBackpressure();
    const reader = await stalledReader(await tcpLink(), slow.token, slow.projectKey, REQUESTS);

    // Let the answers pile up: a hundred stuck ones filled the queue Aedes shares between all connections.
    await new Promise((r) => setTimeout(r, 1_000));

    // Meanwhile the other project's device reports and gets its answer, every time (a PUBACK alone would not
    // show it: Aedes writes it before the message goes through that shared queue, and the answer after).
    await good.subscribeAsync('attributes/response');
    for (let i = 0; i < 10; i++) {
      const answered = nextOn(good, 'attributes/response');
      await good.publishAsync('attributes', JSON.stringify({ n: i }), { qos: 1 });
      await Promise.race([
        answered,
        new Promise((_, reject) =>
          setTimeout(() => reject(new Error(`report ${i} of the calm device not answered within 5 s`)), 5_000),
        ),
      ]);
    }

    // The reader's unsent output passed the bound, so the broker closed its connection (long before Aedes' drain
    // timeout).
    await closedForNotReading(before);
    expect(await reader.readToEnd()).toBeLessThan(REQUESTS * ANSWER_BYTES);
    // Counted once for the connection, however many writes were waiting on it.
    expect((await droppedForBackpressure()) - before).toBe(1);
    // And the broker still serves: the calm device reports once more.
    await good.publishAsync('attributes', JSON.stringify({ n: 'after' }), { qos: 1 });
  }, 60_000);

  it('is closed once its buffer has not drained for the drain timeout, under the bound too', async () => {
    const patient = await startTestBroker(ctx, { maxPendingOutputBytes: 1024 ** 3, drainTimeoutMs: 1_000 });
    try {
      const slow = await deviceWithBigAttributes('slow under the bound');
      const before = await droppedForBackpressure();
      const reader = await stalledReader(await tcpLink(patient.port), slow.token, slow.projectKey, REQUESTS);
      // Left to itself: the bound (1 GiB) is never reached, the drain timeout (1 s) is.
      await closedForNotReading(before);
      expect(await reader.readToEnd()).toBeLessThan(REQUESTS * ANSWER_BYTES);
      expect((await droppedForBackpressure()) - before).toBe(1);
    } finally {
      await patient.close();
    }
  }, 60_000);

  it('is closed the same way over WebSocket', async () => {
    const slow = await deviceWithBigAttributes('slow over WebSocket');
    const before = await droppedForBackpressure();
    const reader = await stalledReader(await webSocketLink(), slow.token, slow.projectKey, REQUESTS);
    await closedForNotReading(before);
    expect(await reader.readToEnd()).toBeLessThan(REQUESTS * ANSWER_BYTES);
    expect((await droppedForBackpressure()) - before).toBe(1);
  }, 60_000);
});
