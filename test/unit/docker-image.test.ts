import { execFileSync, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { makeCa } from '../helpers/tls.ts';

/**
 * What the image holds and how it is probed (README "Docker (with TimescaleDB)", docs/operations.md §3,
 * docs/tls.md §5): secrets an operator may leave in the checkout stay out of the build context and out of
 * git, the health check asks whichever API port is on, and compose publishes ports of its own settings.
 */
const ROOT = path.resolve(import.meta.dirname, '../..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');
/** Docker's .dockerignore rules (a CommonJS function; its typings declare an ES default export that TypeScript will not call from ESM). */
const dockerignore = createRequire(import.meta.url)('@balena/dockerignore') as (options?: { ignorecase?: boolean }) => {
  add(patterns: string): { ignores(pathname: string): boolean };
};

const SECRETS = [
  'data/jwt-secret',
  'data/pg/base/1/1234',
  'data.old/jwt-secret',
  'data.old-2026-01-01-120000/pg/PG_VERSION',
  'data-copy/jwt-secret',
  'tls/ca.key',
  'tls/server.crt',
  'iot-backup-2026-01-01.tgz',
  'backups/iot-backup-2026-01-01.tgz',
  'iot.dump',
  'server.pem',
  'certs/privkey.pem',
  'server.key',
  '.env',
  '.env.production',
  'test-results/browser/x.png',
];
/**
 * What the image needs (Dockerfile): the build stage compiles the sources (`npm run build`) and the console;
 * the runtime image keeps the sources beside dist/ for the CLI and the console's fingerprint.
 */
const NEEDED = [
  'package.json',
  'package-lock.json',
  'patches/postgres+3.4.9.patch',
  'src/main.ts',
  'src/tls/servers.ts',
  'src/db/data-dir-lock.ts',
  'src/http/routes/data-streams/data-streams.routes.ts',
  'mqtt-broker/mqtt/broker.ts',
  'drizzle/0000_init.sql',
  'drizzle/meta/_journal.json',
  'console/build.ts',
  'console/src/main.tsx',
  'console/dist/index.html',
  'tsconfig.json',
  'tsconfig.build.json',
  '.env.example',
];

describe('.dockerignore', () => {
  const ig = dockerignore({ ignorecase: false }).add(read('.dockerignore'));

  it('keeps data copies, backups, keys, certificates and .env out of the image', () => {
    expect(SECRETS.filter((f) => !ig.ignores(f))).toEqual([]);
  });

  it('keeps what the server runs (sources, migrations, the console and its build)', () => {
    expect(NEEDED.filter((f) => ig.ignores(f))).toEqual([]);
  });

  it('keeps a local dist/ out: the image runs the one its build stage compiled', () => {
    expect(ig.ignores('dist/src/main.js')).toBe(true);
  });
});

/** An unpacked archive has no git to ask. */
const inGit = (() => {
  try {
    execFileSync('git', ['rev-parse', '--is-inside-work-tree'], { cwd: ROOT, stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('.gitignore', () => {
  it.skipIf(!inGit)('keeps the same secrets out of git', () => {
    const ignored = (f: string) => {
      try {
        execFileSync('git', ['check-ignore', '-q', '--no-index', f], { cwd: ROOT, stdio: 'ignore' });
        return true;
      } catch {
        return false;
      }
    };
    expect(SECRETS.filter((f) => f !== '.env.production' && !ignored(f))).toEqual([]);
    expect(
      ['src/main.ts', 'src/tls/servers.ts', 'src/db/data-dir-lock.ts', 'drizzle/0000_init.sql', '.env.example'].filter(
        ignored,
      ),
    ).toEqual([]);
  });
});

describe('docker-compose.yml published ports', () => {
  it("come from compose settings of their own, never from the server's HTTP_PORT/MQTT_PORT/TCP_PORT", () => {
    const compose = parse(read('docker-compose.yml')) as { services: { app: { ports: string[] } } };
    const ports = compose.services.app.ports;
    expect(ports).toHaveLength(3);
    for (const mapping of ports) {
      const host = mapping.slice(0, mapping.lastIndexOf(':'));
      expect(host).toMatch(/^\$\{PUBLISH_[A-Z]+_PORT:-\d+\}$/);
    }
  });
});

describe('Dockerfile HEALTHCHECK', () => {
  const cmd = /HEALTHCHECK[^\n]*\\\n\s*CMD (\[.*\])/.exec(read('Dockerfile'))?.[1];
  const argv = JSON.parse(cmd ?? '[]') as string[];
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** Runs the image's probe with `env`; its exit code. */
  async function probe(env: Record<string, string>): Promise<number | null> {
    expect(argv[0]).toBe('node');
    const child = spawn(process.execPath, argv.slice(1), { env: { PATH: process.env.PATH, ...env }, stdio: 'ignore' });
    const [code] = (await once(child, 'exit')) as [number | null];
    return code;
  }

  function readyz(server: http.Server | https.Server, status: () => number) {
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      res.writeHead(req.url === '/readyz' ? status() : 404).end();
    });
  }

  async function listen(server: http.Server | https.Server): Promise<number> {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return (server.address() as AddressInfo).port;
  }

  it('asks HTTP_PORT for /readyz: 0 when ready, 1 when not', async () => {
    let status = 200;
    const server = http.createServer();
    readyz(server, () => status);
    const port = await listen(server);
    try {
      expect(await probe({ HTTP_PORT: String(port) })).toBe(0);
      status = 503;
      expect(await probe({ HTTP_PORT: String(port) })).toBe(1);
    } finally {
      server.close();
    }
  }, 30_000);

  it('asks HTTPS_PORT when HTTP_PORT=off (its own server: the certificate is not checked)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'iot-health-'));
    dirs.push(dir);
    const pair = makeCa(dir).issue('server');
    let status = 200;
    const server = https.createServer({ cert: pair.cert, key: pair.key });
    readyz(server, () => status);
    const port = await listen(server);
    try {
      expect(await probe({ HTTP_PORT: 'off', HTTPS_PORT: String(port) })).toBe(0);
      status = 503;
      expect(await probe({ HTTP_PORT: 'off', HTTPS_PORT: String(port) })).toBe(1);
    } finally {
      server.close();
    }
  }, 30_000);

  it('fails when nothing answers', async () => {
    // A port held by a server that drops every connection unanswered: the port cannot be taken by a parallel
    // test in the meantime (as a closed one could), so the probe meets no answer every time.
    const sockets: net.Socket[] = [];
    const server = net.createServer((socket) => {
      sockets.push(socket);
      socket.destroy();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    try {
      expect(await probe({ HTTP_PORT: String(port) })).toBe(1);
      expect(await probe({ HTTP_PORT: 'off', HTTPS_PORT: String(port) })).toBe(1);
      expect(sockets.length).toBe(2); // both probes reached the port and were dropped
    } finally {
      server.close();
    }
  }, 30_000);
});
