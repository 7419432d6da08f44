import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { limitHttpConnections } from '../../src/http/connections.ts';

/** Silent HTTP sockets from one address cannot crowd out everybody else's requests. */
const sockets: net.Socket[] = [];
let server: http.Server | undefined;
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  if (server) await new Promise((r) => server!.close(r));
  server = undefined;
});

async function start(perAddress: number, trustProxy = false) {
  server = http.createServer((_req, res) => res.end('ok'));
  const countOf = limitHttpConnections(server, { perAddress, trustProxy, headersTimeoutMs: 10_000 });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as net.AddressInfo).port, countOf };
}

async function silent(port: number, localAddress: string) {
  const s = net.connect({ port, host: '127.0.0.1', localAddress });
  sockets.push(s);
  s.on('error', () => {});
  await once(s, 'connect');
  return s;
}

const get = (port: number) =>
  new Promise<string>((resolve, reject) =>
    http
      .get({ port, host: '127.0.0.1', localAddress: '127.0.0.1', agent: false }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve(body));
      })
      .on('error', reject),
  );

describe('HTTP connections per address', () => {
  it('closes sockets of one address beyond the limit; another address is served', async () => {
    const { port, countOf } = await start(20);
    const flood = await Promise.all(Array.from({ length: 30 }, () => silent(port, '127.0.0.2')));
    await vi.waitFor(() => expect(flood.filter((s) => s.destroyed || s.readableEnded).length).toBe(10));
    expect(countOf('127.0.0.2')).toBe(20);
    expect(await get(port)).toBe('ok');
  });

  it('does not apply behind a trusted proxy (every socket is the proxy)', async () => {
    const { port, countOf } = await start(5, true);
    await Promise.all(Array.from({ length: 10 }, () => silent(port, '127.0.0.2')));
    expect(countOf('127.0.0.2')).toBe(0);
    expect(await get(port)).toBe('ok');
  });
});
