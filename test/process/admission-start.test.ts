import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { spawnTs, type Spawned } from '../helpers/process.ts';

/** `npm start` wires one admission (mqtt-broker/core/admission.ts) for the MQTT port, the TCP port and the WebSocket. */
let server: Spawned | undefined;
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'iot-admission-'));
const sockets: net.Socket[] = [];
afterAll(() => {
  for (const s of sockets) s.destroy();
  server?.child.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

function silent(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
    sockets.push(s);
    s.on('error', () => {});
    s.once('connect', () => resolve(s)).once('error', reject);
  });
}

it('silent sockets on the MQTT and TCP ports share one per-address budget set by PENDING_CONNECTIONS_PER_ADDRESS; HTTP keeps answering', async () => {
  server = spawnTs('src/main.ts', [], {
    DATA_DIR: dataDir,
    HOST: '127.0.0.1',
    HTTP_PORT: '0',
    MQTT_PORT: '0',
    TCP_PORT: '0',
    LOG_LEVEL: 'info',
    PENDING_CONNECTIONS_PER_ADDRESS: '5',
    MQTT_CONNECT_TIMEOUT_MS: '120000',
    TCP_LOGIN_TIMEOUT_MS: '120000',
  });
  const [, mqttPort] = await server.waitFor(/MQTT listening at mqtt:\/\/127\.0\.0\.1:(\d+)/, 60_000);
  const [, tcpPort] = await server.waitFor(/TCP listening at tcp:\/\/127\.0\.0\.1:(\d+)/, 60_000);
  const [, url] = await server.waitFor(/Server listening at (http:\/\/127\.0\.0\.1:\d+)/, 60_000);

  const onTcp: net.Socket[] = [];
  for (let i = 0; i < 5; i++) onTcp.push(await silent(Number(tcpPort)));
  const onMqtt: net.Socket[] = [];
  for (let i = 0; i < 5; i++) onMqtt.push(await silent(Number(mqttPort)));
  // Five places for the address on both ports together (separate budgets would keep all ten open).
  const open = () => [...onTcp, ...onMqtt].filter((s) => !s.destroyed).length;
  await expect.poll(open, { timeout: 10_000 }).toBe(5);
  // The newest ones stay.
  expect(onMqtt.at(-1)!.destroyed).toBe(false);
  expect(await fetch(`${url}/health`).then((r) => r.status)).toBe(200);
}, 120_000);
