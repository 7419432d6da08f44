import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { chromium, type Browser, type Page } from 'playwright-core';
import { onTestFailed } from 'vitest';
import { startTestBroker, type TestBroker } from './broker.ts';
import { createTestApp, expectOk, type ProjectFixture, type TestContext } from './app.ts';
import { openPrivateTestDatabase } from './db.ts';

/**
 * The browser tests of the web console drive the machine's Chromium — Debian's
 * `chromium` package, which .ci/run installs when it is missing — through playwright-core.
 */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

const root = path.resolve(import.meta.dirname, '../..');

/**
 * Why the browser tests cannot run here, or undefined when they can. Without Chromium a developer's
 * `npm test` skips them with this reason; in CI (CI=true) a missing Chromium is a failure instead: the
 * browser tests are part of the proof.
 */
export function browserSkipReason(): string | undefined {
  if (existsSync(CHROMIUM_PATH)) return undefined;
  const reason = `no Chromium at ${CHROMIUM_PATH} (install Debian's chromium package, or set CHROMIUM_PATH)`;
  if (process.env.CI === 'true' || process.env.CI === '1') throw new Error(`browser tests cannot run in CI: ${reason}`);
  return reason;
}

/** Headless Chromium, sandbox off (CI runs as root), no background traffic. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

export interface ConsoleServer {
  ctx: TestContext;
  broker: TestBroker;
  /** `http://127.0.0.1:<port>` */
  baseUrl: string;
  /** `<baseUrl>/console/` */
  consoleUrl: string;
  close(): Promise<void>;
}

/**
 * The real app — HTTP API, the live-events endpoint and the console's static files — listening on a
 * port of its own, with the MQTT broker beside it and the background services started as the server
 * starts them (src/main.ts). Its database is its own (the embedded one, or a fresh database on the
 * server of TEST_DATABASE_URL): the alarm timers and the command sweep it starts work on every project
 * they find, and must not act on the other test files' projects.
 */
export async function startConsoleServer(): Promise<ConsoleServer> {
  const ctx = await createTestApp({}, { database: await openPrivateTestDatabase() });
  const { services } = ctx;
  services.presence.start();
  services.commands.start();
  services.currentCache.start();
  await services.alarms.start();
  const broker = await startTestBroker(ctx);
  await ctx.app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = ctx.app.server.address() as AddressInfo;
  const baseUrl = `http://127.0.0.1:${port}`;
  return {
    ctx,
    broker,
    baseUrl,
    consoleUrl: `${baseUrl}/console/`,
    close: async () => {
      await broker.close();
      await services.commands.stop();
      await services.presence.stop();
      await ctx.close();
    },
  };
}

export interface SimulatedDevice {
  id: string;
  name: string;
  client: MqttClient;
  /** Every command the device was sent, as `{method, params, id}`. */
  commands: Array<{ method: string; params: unknown; id: number }>;
  /** Every `attributes/push` the device received (parsed). */
  pushes: unknown[];
  /** Reports attribute values (QoS 1: resolves once the server has stored them). */
  report(values: Record<string, unknown>): Promise<void>;
  /** Back-dated reports on `attributes/series` (docs/device-protocol.md §3.1), stored once resolved. */
  reportSeries(entries: Array<{ ts: number; attributes: Record<string, unknown> }>): Promise<void>;
  /** Raw bytes on a custom data stream, `data/<identifier>` (docs/device-protocol.md §7). */
  sendData(identifier: string, bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/**
 * A device of the project connected over MQTT with its certificate (docs/device-protocol.md §3) that
 * answers every command on `command/reply/<id>` with `reply(command)` as the reply's params.
 */
export async function simulateDevice(
  server: ConsoleServer,
  p: ProjectFixture,
  device: { id: string; name: string },
  reply: (command: { method: string; params: unknown }) => unknown = (c) => ({ done: c.method }),
): Promise<SimulatedDevice> {
  const cert = expectOk(await p.api.get(`/api/v1/device/${device.id}/certificate`));
  const client = await mqtt.connectAsync(server.broker.url, {
    username: cert.access_token,
    password: p.project.project_key,
    reconnectPeriod: 0,
  });
  const commands: SimulatedDevice['commands'] = [];
  const pushes: unknown[] = [];
  client.on('message', (topic, payload) => {
    if (topic === 'attributes/push') pushes.push(JSON.parse(payload.toString()));
    const m = /^command\/send\/(\d+)$/.exec(topic);
    if (!m) return;
    const command = JSON.parse(payload.toString()) as { method: string; params: unknown; id: number };
    commands.push(command);
    client.publish(
      `command/reply/${m[1]}`,
      JSON.stringify({ method: command.method, params: reply(command), id: command.id }),
      { qos: 1 },
    );
  });
  await client.subscribeAsync(['command/send/+', 'attributes/push'], { qos: 1 });
  return {
    ...device,
    client,
    commands,
    pushes,
    report: async (values) => {
      await client.publishAsync('attributes', JSON.stringify(values), { qos: 1 });
    },
    reportSeries: async (entries) => {
      await client.publishAsync('attributes/series', JSON.stringify(entries), { qos: 1 });
    },
    sendData: async (identifier, bytes) => {
      await client.publishAsync(`data/${identifier}`, Buffer.from(bytes), { qos: 1 });
    },
    close: () => client.endAsync(true),
  };
}

/** Where the browser tests save screenshots: BROWSER_SCREENSHOTS_DIR, else test-results/browser/. */
export const SCREENSHOTS_DIR = process.env.BROWSER_SCREENSHOTS_DIR || path.join(root, 'test-results', 'browser');

/**
 * Call inside a test: when the test fails, a full-page screenshot of `page` is saved (its path is
 * printed) so what the browser showed can be seen after a CI run.
 */
export function screenshotOnFailure(page: Page, name: string): void {
  onTestFailed(async () => {
    if (page.isClosed()) return;
    const safe = name.replace(/[^A-Za-z0-9_-]+/g, '-').slice(0, 80);
    const file = path.join(
      SCREENSHOTS_DIR,
      `${safe}-${process.env.TEST_DATABASE_URL ? 'postgres' : 'embedded'}-${Date.now()}.png`,
    );
    try {
      await mkdir(SCREENSHOTS_DIR, { recursive: true });
      await page.screenshot({ path: file, fullPage: true, timeout: 5_000 });
      console.error(`browser test "${name}" failed: screenshot of ${page.url()} saved to ${file}`);
    } catch (err) {
      console.error(`browser test "${name}" failed; its screenshot could not be saved: ${(err as Error).message}`);
    }
  });
}

/** The committed screenshot of the device page in the README (written when UPDATE_SCREENSHOTS=1). */
export const README_DEVICE_SCREENSHOT = path.join(root, 'docs', 'img', 'console-device.png');
