/**
 * The load generator of bench/tcp, a child process of its own (so its event loop is not the
 * server's): connects N devices over raw TCP or MQTT, waits for "go" on stdin, then sends 64-byte frames at a total rate,
 * spread evenly over the devices. Each frame starts with its send time (float64, ms since the
 * epoch with a fraction) so the server side measures write → recorded. Writes JSON lines on stdout.
 *
 *   node --import tsx bench/lib/tcp-load.ts <config json>
 *   config: {mode: "tcp"|"mqtt", port, projectKey, tokens: [..] | tokensFile, rate, warmup, duration, frameSize, concurrency}
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';

interface LoadConfig {
  mode: 'tcp' | 'mqtt';
  port: number;
  projectKey: string;
  tokensFile: string;
  /** Frames per second, all devices together. */
  rate: number;
  warmup: number;
  duration: number;
  frameSize: number;
  concurrency: number;
  identifier: string;
}

const config = JSON.parse(process.argv[2] ?? '{}') as LoadConfig;
const tokens = readFileSync(config.tokensFile, 'utf8').split('\n').filter(Boolean);
const say = (event: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(event)}\n`);
const now = () => performance.timeOrigin + performance.now();

interface Device {
  send(frame: Buffer): void;
  close(): Promise<void>;
}

function connectTcp(token: string): Promise<Device> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(config.port, '127.0.0.1');
    socket.setNoDelay(true);
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.write(`${config.projectKey}&${token}\r\n`);
      socket.off('error', reject);
      socket.on('error', () => {});
      resolve({
        send: (frame) => void socket.write(frame),
        close: () =>
          new Promise<void>((done) => (socket.destroyed ? done() : (socket.once('close', () => done()), socket.end()))),
      });
    });
  });
}

async function connectMqtt(token: string): Promise<Device> {
  const client: MqttClient = await mqtt.connectAsync(`mqtt://127.0.0.1:${config.port}`, {
    username: token,
    password: config.projectKey,
    reconnectPeriod: 0,
    connectTimeout: 30_000,
    keepalive: 300,
  });
  const topic = `data/${config.identifier}`;
  return {
    send: (frame) => void client.publish(topic, frame, { qos: 1 }),
    close: () => client.endAsync().catch(() => undefined),
  };
}

async function main() {
  const started = performance.now();
  const devices: Device[] = new Array(tokens.length);
  let next = 0;
  let failed = 0;
  const worker = async () => {
    while (next < tokens.length) {
      const i = next++;
      try {
        devices[i] = await (config.mode === 'tcp' ? connectTcp(tokens[i]!) : connectMqtt(tokens[i]!));
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: config.concurrency }, worker));
  const live = devices.filter(Boolean);
  say({ event: 'connected', devices: live.length, failed, ms: performance.now() - started });
  // Logins are not acknowledged on TCP: the harness says "go" once the server has registered them all
  // (frames sent earlier would wait in the socket with the login and arrive together, as one message).
  await new Promise<void>((resolve) => {
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (text: string) => text.includes('go') && resolve());
  });
  process.stdin.pause();

  const filler = Buffer.alloc(config.frameSize);
  for (let i = 8; i < filler.length; i++) filler[i] = (i * 37) & 0xff;
  const tickMs = 10;
  let last = now();
  const warmupEnd = now() + config.warmup * 1000;
  const end = warmupEnd + config.duration * 1000;
  let owed = 0;
  let cursor = 0;
  let sentInWindow = 0;
  let sentTotal = 0;
  let announced = false;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const t = now();
      if (t >= end) return resolve();
      if (!announced && t >= warmupEnd) {
        announced = true;
        say({ event: 'window', start: warmupEnd, end });
      }
      // Owed by the clock, not by the tick count: a late timer does not lower the rate.
      owed += (config.rate * (t - last)) / 1000;
      last = t;
      while (owed >= 1) {
        owed -= 1;
        const frame = Buffer.from(filler);
        const stamp = now();
        frame.writeDoubleBE(stamp, 0);
        live[cursor]!.send(frame);
        cursor = (cursor + 1) % live.length;
        sentTotal++;
        if (stamp >= warmupEnd && stamp < end) sentInWindow++;
      }
      setTimeout(tick, tickMs);
    };
    tick();
  });
  say({ event: 'sent', window: sentInWindow, total: sentTotal });
  // Wait for the harness to read everything, then close.
  await new Promise((r) => setTimeout(r, 3_000));
  await Promise.all(live.map((d) => d.close()));
  say({ event: 'closed' });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    say({ event: 'error', message: (err as Error).message });
    process.exit(1);
  },
);
