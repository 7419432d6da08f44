import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { connectCluster, natsTarget } from '../../src/cluster/cluster.ts';
import { natsReachable } from '../helpers/cluster.ts';
import { until } from '../helpers/wait.ts';

/**
 * NATS_URL as the nodes and the CLI read it (docs/cluster.md §6): credentials in a URL become the client's
 * user and password (or token) and never appear in what is shown; `tls://` makes TLS required.
 */
describe('NATS_URL', () => {
  it('takes credentials out of the URLs and shows the servers without them', () => {
    const t = natsTarget('nats://svc:s3cr%40t@n1:4222, nats://n2:4222');
    expect(t.servers).toEqual(['nats://n1:4222', 'nats://n2:4222']);
    expect(t.options).toEqual({ user: 'svc', pass: 's3cr@t' });
    expect(t.shown).toBe('nats://n1:4222, nats://n2:4222');
    expect(natsTarget('nats://tok123@n1:4222').options).toEqual({ token: 'tok123' });
  });

  it('requires TLS for tls:// URLs or a CA file, and not otherwise', () => {
    expect(natsTarget('tls://n1:4222').options).toEqual({ tls: {} });
    expect(natsTarget('nats://n1:4222', '/etc/ca.pem').options).toEqual({ tls: { caFile: '/etc/ca.pem' } });
    expect(natsTarget('nats://n1:4222').options).toEqual({});
    expect(natsTarget('n1:4222').servers).toEqual(['nats://n1:4222']);
  });
});

/** A NATS server of this test's own, with a user and a password (when the nats-server binary is installed). */
const hasServer = spawnSync('nats-server', ['--version']).status === 0;
const children: ChildProcess[] = [];
const dirs: string[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe.skipIf(!hasServer)('a NATS server that wants a password', () => {
  it('is joined with the credentials of NATS_URL, and refused without them in one clear line', async () => {
    const port = await freePort();
    const store = mkdtempSync(path.join(os.tmpdir(), 'nats-auth-'));
    dirs.push(store);
    const child = spawn(
      'nats-server',
      ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', store, '--user', 'svc', '--pass', 'pw-123'],
      {
        stdio: 'ignore',
      },
    );
    children.push(child);
    // Listening once it answers with its INFO line.
    await until(() => natsReachable(`nats://127.0.0.1:${port}`), 'the NATS server to listen', { timeout: 10_000 });
    const silent = { info() {}, warn() {}, error() {} };
    await expect(
      connectCluster({ servers: `nats://127.0.0.1:${port}`, name: 'auth', nodeId: 'x', logger: silent }),
    ).rejects.toThrow(/cannot reach NATS at nats:\/\/127\.0\.0\.1:\d+ .*check NATS_URL/);
    const c = await connectCluster({
      servers: `nats://svc:pw-123@127.0.0.1:${port}`,
      name: 'auth',
      nodeId: 'x',
      logger: silent,
    });
    expect(c.status).toBe('connected');
    await c.close();
  });
});
