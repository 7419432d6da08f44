import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverEnv, spawnTs, type Spawned } from '../helpers/process.ts';
import { httpsJson, listeningPorts, makeCa, replaceAtomically, servedSerial } from '../helpers/tls.ts';

/**
 * TLS terminated by the server itself (docs/tls.md), against the real process (src/main.ts) and real
 * clients that trust a CA made here: HTTPS API, MQTT over `wss://…/mqtt` and `mqtts://` (a device
 * reporting, application subscribers receiving), raw TCP over TLS both ways; clients that do not trust
 * the CA refuse the server; a certificate replaced on disk (atomic rename) is served to new
 * connections without a restart and a bad pair is refused with the old one kept; plaintext
 * listeners set to `off` do not listen; certificate problems stop the start with a clear message.
 */
const PLATFORM_TOKEN = 'tls-platform-token-0123456789';
const dir = mkdtempSync(path.join(os.tmpdir(), 'iot-tls-'));
const certFile = path.join(dir, 'live', 'fullchain.pem');
const keyFile = path.join(dir, 'live', 'privkey.pem');
const ca = makeCa(dir);
const first = ca.issue('first');
const second = ca.issue('second');
const stranger = ca.issue('stranger');

const procs: Spawned[] = [];
const clients: MqttClient[] = [];
const sockets: tls.TLSSocket[] = [];
const raw: net.Socket[] = [];
afterAll(async () => {
  for (const c of clients) c.end(true);
  for (const s of [...sockets, ...raw]) s.destroy();
  for (const p of procs) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exit()));
  rmSync(dir, { recursive: true, force: true });
});

function start(extra: Record<string, string>): Spawned {
  const dataDir = mkdtempSync(path.join(dir, 'data-'));
  const p = spawnTs('src/main.ts', [], serverEnv(dataDir, undefined, { PLATFORM_TOKEN, ...extra }));
  procs.push(p);
  return p;
}

const port = async (p: Spawned, re: RegExp) => Number((await p.waitFor(re, 90_000))[1]);
const tlsEnv = { TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile, HTTPS_PORT: '0', MQTTS_PORT: '0', TCPS_PORT: '0' };

let server: Spawned;
let ports: { http: number; mqtt: number; tcp: number; https: number; mqtts: number; tcps: number };
let base: string;

async function api(method: string, url: string, token?: string, body?: unknown) {
  const res = await httpsJson(base + url, {
    method,
    ca: ca.ca,
    ...(token ? { token } : {}),
    ...(body !== undefined ? { body } : {}),
  });
  if (res.status !== 200 || !res.body.result)
    throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.info;
}

beforeAll(async () => {
  mkdirSync(path.dirname(certFile));
  writeFileSync(certFile, first.cert);
  writeFileSync(keyFile, first.key);
  // The periodic check is an hour away: a renewal seen within seconds came through the directory watch.
  server = start({
    ...tlsEnv,
    TLS_RELOAD_INTERVAL_MS: '3600000',
    // Small budgets for the silent sockets of the last tests, which come from other loopback addresses.
    PENDING_CONNECTIONS_PER_ADDRESS: '5',
    MQTT_CONNECT_TIMEOUT_MS: '6000',
    TCP_LOGIN_TIMEOUT_MS: '6000',
    HTTP_CONNECTIONS_PER_ADDRESS: '8',
    HTTP_HEADERS_TIMEOUT_MS: '6000',
  });
  ports = {
    http: await port(server, /Server listening at http:\/\/127\.0\.0\.1:(\d+)/),
    mqtt: await port(server, /MQTT listening at mqtt:\/\/127\.0\.0\.1:(\d+)/),
    tcp: await port(server, /TCP listening at tcp:\/\/127\.0\.0\.1:(\d+)/),
    mqtts: await port(server, /MQTTS listening at mqtts:\/\/127\.0\.0\.1:(\d+)/),
    tcps: await port(server, /TCPS listening at tcps:\/\/127\.0\.0\.1:(\d+)/),
    https: await port(server, /HTTPS listening at https:\/\/127\.0\.0\.1:(\d+)/),
  };
  base = `https://127.0.0.1:${ports.https}`;
}, 120_000);

describe('TLS listeners', () => {
  let project: { project_key: string };
  let token: string;
  let view: { view_key: string; view_secret: string };

  it('serves the API, /docs and /health over HTTPS; the plaintext listeners stay', async () => {
    expect(listeningPorts(server.child.pid!)).toEqual(Object.values(ports).sort((a, b) => a - b));
    project = await api('POST', '/platform/v1/projects', PLATFORM_TOKEN, { name: 'tls' });
    const created = project as unknown as { app: Record<string, string> };
    token = (await api('POST', '/api/v1/access_token', undefined, created.app)).access_token;
    view = await api('POST', '/api/v1/view_key', token, {});
    expect((await httpsJson(`${base}/health`, { ca: ca.ca })).status).toBe(200);
    expect((await httpsJson(`${base}/docs/json`, { ca: ca.ca })).body).toMatchObject({ openapi: expect.any(String) });
    // An error is the same envelope as on HTTP.
    const missing = await httpsJson(`${base}/api/v1/device/nope`, { ca: ca.ca, token });
    expect(missing.body).toMatchObject({ result: false, errcode: expect.any(Number) });
    expect((await fetch(`http://127.0.0.1:${ports.http}/health`)).status).toBe(200);
  });

  it('refuses to be trusted by a client that does not trust the CA (HTTPS, MQTTS, WSS, TCPS)', async () => {
    await expect(httpsJson(`${base}/health`)).rejects.toMatchObject({
      code: expect.stringMatching(/SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/),
    });
    for (const url of [`mqtts://127.0.0.1:${ports.mqtts}`, `wss://127.0.0.1:${ports.https}/mqtt`]) {
      await expect(
        mqtt.connectAsync(url, {
          username: view.view_key,
          password: view.view_secret,
          reconnectPeriod: 0,
          connectTimeout: 10_000,
        }),
      ).rejects.toMatchObject({
        code: expect.stringMatching(/SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/),
      });
    }
    for (const p of [ports.tcps, ports.mqtts])
      await expect(servedSerial(p, undefined)).rejects.toMatchObject({
        code: expect.stringMatching(/SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/),
      });
  });

  it('a device reports over mqtts:// and over wss://…/mqtt; application subscribers on both receive it', async () => {
    const device = await api('POST', '/api/v1/device', token, { name: 'secure' });
    const accessToken = (await api('GET', `/api/v1/device/${device.id}/certificate`, token)).access_token as string;
    const connect = async (url: string, username: string, password: string) => {
      const c = await mqtt.connectAsync(url, {
        username,
        password,
        ca: ca.ca,
        reconnectPeriod: 0,
        connectTimeout: 10_000,
      });
      clients.push(c);
      return c;
    };
    const mqtts = `mqtts://127.0.0.1:${ports.mqtts}`;
    const wss = `wss://127.0.0.1:${ports.https}/mqtt`;
    const viewers = [
      await connect(wss, view.view_key, view.view_secret),
      await connect(mqtts, view.view_key, view.view_secret),
    ];
    const seen: string[][] = viewers.map(() => []);
    for (const [i, v] of viewers.entries()) {
      v.on('message', (_t, payload) => seen[i]!.push(JSON.parse(payload.toString()).attributes?.temperature));
      await v.subscribeAsync(`${view.view_key}/+/attributes`);
    }
    const overTls = await connect(mqtts, accessToken, project.project_key);
    await overTls.publishAsync('attributes', JSON.stringify({ temperature: 21.5 }), { qos: 1 });
    overTls.end();
    const overWss = await connect(wss, accessToken, project.project_key);
    await overWss.publishAsync('attributes', JSON.stringify({ temperature: 22.5 }), { qos: 1 });
    await expect
      .poll(() => seen, { timeout: 10_000 })
      .toEqual([
        [21.5, 22.5],
        [21.5, 22.5],
      ]);
    const current = await api('GET', `/api/v1/device/${device.id}/attributes`, token);
    expect(JSON.stringify(current)).toContain('22.5');
  });

  it('raw TCP over TLS: login, bytes up stored, a push down', async () => {
    const type = await api('POST', '/api/v1/device_type', token, { name: 'dtu', conn_protocol: 'tcp' });
    const device = await api('POST', '/api/v1/device', token, { name: 'dtu', type: type.id });
    const accessToken = (await api('GET', `/api/v1/device/${device.id}/certificate`, token)).access_token as string;
    const received: Buffer[] = [];
    const s = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const c = tls.connect({ host: '127.0.0.1', port: ports.tcps, ca: ca.ca }, () => resolve(c));
      c.once('error', reject);
    });
    sockets.push(s);
    s.on('data', (d: Buffer) => received.push(d));
    s.write(`${project.project_key}&${accessToken}\r\n`);
    await expect
      .poll(async () => (await api('GET', `/api/v1/device/${device.id}`, token)).online, { timeout: 10_000 })
      .toBe(true);
    s.write(Buffer.from([0xde, 0xad, 0xbe, 0xef]));
    await expect
      .poll(
        async () =>
          (
            (await api('GET', `/api/v1/device/${device.id}/data/stream/messages`, token)).items as Array<{
              direction: string;
              hex: string;
            }>
          )
            .filter((m) => m.direction === 'up')
            .map((m) => m.hex.replace(/\s/g, '')),
        { timeout: 10_000 },
      )
      .toEqual(['deadbeef']);
    await api('POST', `/api/v1/control/device/${device.id}/data/stream/set?push_mode=tcp`, token, {
      type: 'text',
      msg: 'hello',
    });
    await expect.poll(() => Buffer.concat(received).toString(), { timeout: 10_000 }).toBe('hello');
  });

  it('serves a certificate replaced on disk (atomic rename) to new connections without a restart; a bad pair is refused and the old one kept', async () => {
    const serials = async () => {
      const seen: string[] = [];
      for (const p of [ports.https, ports.mqtts, ports.tcps]) seen.push(await servedSerial(p, ca.ca));
      return seen;
    };
    const [firstSerial] = await serials();
    expect(new Set(await serials())).toEqual(new Set([firstSerial]));
    // A device connected before the renewal stays connected and keeps working.
    const device = await api('POST', '/api/v1/device', token, { name: 'long-lived' });
    const accessToken = (await api('GET', `/api/v1/device/${device.id}/certificate`, token)).access_token as string;
    const longLived = await mqtt.connectAsync(`mqtts://127.0.0.1:${ports.mqtts}`, {
      username: accessToken,
      password: project.project_key,
      ca: ca.ca,
      reconnectPeriod: 0,
    });
    clients.push(longLived);

    replaceAtomically(certFile, second.cert);
    replaceAtomically(keyFile, second.key);
    await expect
      .poll(async () => new Set(await serials()).size === 1 && (await serials())[0] !== firstSerial, {
        timeout: 10_000,
        interval: 200,
      })
      .toBe(true);
    const [secondSerial] = await serials();
    await server.waitFor(/TLS certificate reloaded/, 5_000);
    await longLived.publishAsync('attributes', JSON.stringify({ after: 1 }), { qos: 1 });
    expect(longLived.connected).toBe(true);
    // New connections work end to end with the new certificate.
    expect((await httpsJson(`${base}/health`, { ca: ca.ca })).status).toBe(200);

    // A key that is not the certificate's: logged, refused, the second pair stays in use.
    replaceAtomically(certFile, first.cert);
    replaceAtomically(keyFile, stranger.key);
    await server.waitFor(
      /TLS certificate not reloaded, the previous one stays in use: TLS_KEY_FILE: .* is not the key of the certificate/,
      10_000,
    );
    expect(await serials()).toEqual([secondSerial, secondSerial, secondSerial]);
    // Fixed: taken into use.
    replaceAtomically(keyFile, first.key);
    await expect
      .poll(async () => (await serials()).every((s) => s === firstSerial), { timeout: 10_000, interval: 200 })
      .toBe(true);
  });
});

/** A TCP connection that sends nothing (no TLS handshake either) from another loopback address. */
function silent(port: number, localAddress: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress });
    raw.push(s);
    s.on('error', () => {});
    s.once('connect', () => resolve(s)).once('error', reject);
  });
}

describe('the protections of the plaintext twins', () => {
  it('MQTT, MQTTS and TCPS share one pending budget per address, counted before the handshake; the CONNECT/login timeout covers the handshake', async () => {
    const opened: net.Socket[] = [];
    for (const p of [ports.mqtts, ports.tcps, ports.mqtt])
      for (let i = 0; i < 3; i++) opened.push(await silent(p, '127.0.0.2'));
    const open = () => opened.filter((s) => !s.destroyed).length;
    // PENDING_CONNECTIONS_PER_ADDRESS=5 for all of them together; the newest stay.
    await expect.poll(open, { timeout: 5_000 }).toBe(5);
    expect(opened.at(-1)!.destroyed).toBe(false);
    // Never logged in (never even shook hands): closed after MQTT_CONNECT_TIMEOUT_MS / TCP_LOGIN_TIMEOUT_MS.
    await expect.poll(open, { timeout: 15_000 }).toBe(0);
  }, 30_000);

  it('HTTPS: HTTP_CONNECTIONS_PER_ADDRESS counts sockets before the handshake, which must end within HTTP_HEADERS_TIMEOUT_MS', async () => {
    const opened: net.Socket[] = [];
    for (let i = 0; i < 10; i++) opened.push(await silent(ports.https, '127.0.0.3'));
    const open = () => opened.filter((s) => !s.destroyed).length;
    await expect.poll(open, { timeout: 5_000 }).toBe(8);
    await expect.poll(open, { timeout: 15_000 }).toBe(0);
    // Other addresses were not affected.
    expect((await httpsJson(`${base}/health`, { ca: ca.ca })).status).toBe(200);
  }, 30_000);
});

describe('plaintext off', () => {
  it('HTTP_PORT=off, MQTT_PORT=off, TCP_PORT=off: only the TLS ports listen, and they serve', async () => {
    const p = start({ ...tlsEnv, HTTP_PORT: 'off', MQTT_PORT: 'off', TCP_PORT: 'OFF' });
    const tlsPorts = [
      await port(p, /MQTTS listening at mqtts:\/\/127\.0\.0\.1:(\d+)/),
      await port(p, /TCPS listening at tcps:\/\/127\.0\.0\.1:(\d+)/),
      await port(p, /HTTPS listening at https:\/\/127\.0\.0\.1:(\d+)/),
    ];
    expect(listeningPorts(p.child.pid!)).toEqual([...tlsPorts].sort((a, b) => a - b));
    expect(p.output()).not.toMatch(/Server listening at http|MQTT listening at mqtt:|TCP listening at tcp:/);
    expect((await httpsJson(`https://127.0.0.1:${tlsPorts[2]}/health`, { ca: ca.ca })).status).toBe(200);
    p.child.kill('SIGTERM');
    expect(await p.exit()).toBe(0);
  }, 120_000);
});

describe('start-up errors', () => {
  const fails = async (extra: Record<string, string>, message: RegExp) => {
    const p = start({ ...tlsEnv, ...extra });
    expect(await p.exit()).toBe(1);
    expect(p.output()).toMatch(message);
    // A message for the operator, not a crash trace.
    expect(p.output()).not.toMatch(/^\s+at /m);
  };

  it('a missing file, a file without a certificate, a key of another certificate', async () => {
    await fails({ TLS_CERT_FILE: path.join(dir, 'nope.pem') }, /TLS_CERT_FILE: cannot read .*nope\.pem: no such file/);
    const notPem = path.join(dir, 'not-a-cert.pem');
    writeFileSync(notPem, 'hello\n');
    await fails({ TLS_CERT_FILE: notPem }, /TLS_CERT_FILE: .*not-a-cert\.pem holds no PEM certificate/);
    await fails(
      { TLS_KEY_FILE: path.join(dir, 'stranger.key'), TLS_CERT_FILE: path.join(dir, 'first.crt') },
      /TLS_KEY_FILE: .*stranger\.key is not the key of the certificate in TLS_CERT_FILE/,
    );
    await fails(
      { TLS_KEY_FILE: path.join(dir, 'first.crt'), TLS_CERT_FILE: path.join(dir, 'first.crt') },
      /TLS_KEY_FILE: .*first\.crt: no PEM private key/,
    );
  }, 120_000);

  it('names the variable when a TLS port is in use', async () => {
    const busy = ports.mqtts;
    await fails({ MQTTS_PORT: String(busy) }, new RegExp(`Port ${busy} is already in use: set MQTTS_PORT`));
  }, 60_000);
});

describe('graceful shutdown', () => {
  it('SIGTERM closes the TLS listeners and their open connections (MQTTS, WSS, TCPS, HTTPS keep-alive) and the process exits 0', async () => {
    const open = clients.filter((c) => c.connected);
    expect(open.length).toBeGreaterThanOrEqual(3);
    const tcps = sockets.filter((s) => !s.destroyed);
    expect(tcps.length).toBe(1);
    const agent = new https.Agent({ keepAlive: true, ca: ca.ca });
    await new Promise<void>((resolve, reject) =>
      https.get(`${base}/health`, { agent }, (res) => res.resume().on('end', () => resolve())).once('error', reject),
    );
    const closed = Promise.all([
      ...open.map((c) => new Promise<void>((r) => c.once('close', () => r()))),
      ...tcps.map((s) => new Promise<void>((r) => s.once('close', () => r()))),
    ]);
    server.child.kill('SIGTERM');
    expect(await server.exit()).toBe(0);
    await closed;
    expect(server.output()).toMatch(/"msg":"stopped"/);
    agent.destroy();
  }, 60_000);
});
