import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { configSchema } from '../../src/config.ts';

/**
 * docker-compose.cluster.yml and deploy/haproxy.cfg describe the cluster of docs/cluster.md §6: three app nodes
 * of one cluster behind HAProxy, a three-server NATS cluster with JetStream, one TimescaleDB. Docker is not
 * needed: the files are read and checked against each other and src/config.ts.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  depends_on?: unknown;
}

const doc = parseDocument(read('docker-compose.cluster.yml'), { merge: true, uniqueKeys: true, prettyErrors: true });
const compose = doc.toJS({ maxAliasCount: 100 }) as {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
};
const services = compose.services;
const names = Object.keys(services);
const appNodes = names.filter((n) => services[n]!.environment?.NATS_URL !== undefined);
const natsServers = names.filter((n) => services[n]!.image?.startsWith('nats:'));
const settings = Object.keys(configSchema.in.shape);

/** The value following `flag` in a command line. */
const arg = (command: string[] | undefined, flag: string) => {
  const i = (command ?? []).indexOf(flag);
  return i >= 0 ? command![i + 1] : undefined;
};

/** deploy/haproxy.cfg as sections: `frontend http` → its lines (comments and blank lines dropped). */
function haproxySections(text: string): Map<string, string[]> {
  const sections = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trimEnd();
    if (!line.trim()) continue;
    if (!/^\s/.test(line)) {
      current = [];
      sections.set(line.trim().replace(/\s+/g, ' '), current);
    } else current?.push(line.trim().replace(/\s+/g, ' '));
  }
  return sections;
}

describe('docker-compose.cluster.yml', () => {
  it('is valid YAML without duplicate keys', () => {
    expect(doc.errors.map((e) => e.message)).toEqual([]);
    expect(doc.warnings.map((e) => e.message)).toEqual([]);
  });

  it('runs three app nodes of one cluster, each with its own NODE_ID, from the repository image', () => {
    expect(appNodes).toHaveLength(3);
    const envs = appNodes.map((n) => services[n]!.environment!);
    expect(new Set(envs.map((e) => e.NODE_ID)).size).toBe(3);
    expect(envs.every((e) => e.NODE_ID && /^[A-Za-z0-9_-]{1,64}$/.test(e.NODE_ID))).toBe(true);
    for (const name of ['CLUSTER_NAME', 'JWT_SECRET', 'PLATFORM_TOKEN', 'DATABASE_URL', 'NATS_URL'] as const) {
      expect(new Set(envs.map((e) => e[name])).size, `${name} is the same on every node`).toBe(1);
      expect(envs[0]![name], name).toBeTruthy();
    }
    expect(envs[0]!.JWT_SECRET).toMatch(/^\$\{JWT_SECRET:\?/);
    expect(envs[0]!.PLATFORM_TOKEN).toMatch(/^\$\{PLATFORM_TOKEN:\?/);
    expect(envs[0]!.DATABASE_URL).toMatch(/^postgres:\/\/[^@]+@db:5432\//);
    for (const n of appNodes) {
      expect(services[n]!.build, n).toBe('.');
      // Names the server does not know would be silently ignored.
      expect(
        Object.keys(services[n]!.environment!).filter((v) => !settings.includes(v)),
        n,
      ).toEqual([]);
      // Each node has a data directory of its own; none publishes a port (HAProxy does).
      expect(
        services[n]!.volumes?.some((v) => v.endsWith(':/app/data')),
        n,
      ).toBe(true);
      expect(services[n]!.ports, n).toBeUndefined();
    }
    expect(new Set(appNodes.map((n) => services[n]!.volumes!.join())).size).toBe(3);
  });

  it('points every node at the three NATS servers, each running JetStream with a store and routes to the others', () => {
    expect(natsServers).toHaveLength(3);
    const urls = services[appNodes[0]!]!.environment!.NATS_URL!.split(',').map((u) => new URL(u));
    expect(urls.map((u) => u.hostname).sort()).toEqual([...natsServers].sort());
    expect(urls.every((u) => u.protocol === 'nats:' && u.port === '4222')).toBe(true);
    const clusterNames = new Set<string | undefined>();
    for (const n of natsServers) {
      const command = services[n]!.command;
      expect(command, n).toContain('-js');
      const store = arg(command, '-sd');
      expect(store, n).toBeTruthy();
      expect(
        services[n]!.volumes?.some((v) => v.endsWith(`:${store}`) && (v.split(':')[0] ?? '') in compose.volumes),
        n,
      ).toBe(true);
      expect(arg(command, '--server_name'), n).toBe(n);
      clusterNames.add(arg(command, '--cluster_name'));
      expect(arg(command, '--cluster'), n).toMatch(/^nats:\/\/0\.0\.0\.0:6222$/);
      const routes = (arg(command, '--routes') ?? '').split(',').map((r) => new URL(r));
      expect(routes.map((r) => r.hostname).sort(), n).toEqual(natsServers.filter((o) => o !== n).sort());
      expect(routes.every((r) => r.port === '6222')).toBe(true);
    }
    expect(clusterNames.size).toBe(1);
    expect([...clusterNames][0]).toBeTruthy();
  });

  it('has TimescaleDB on PostgreSQL 16, and HAProxy publishing 8080, 1883 and 28801 with deploy/haproxy.cfg', () => {
    expect(services.db?.image).toMatch(/^timescale\/timescaledb:.*pg16$/);
    const haproxy = services.haproxy!;
    expect(haproxy.image).toMatch(/^haproxy:2\.9/);
    expect(haproxy.volumes).toContain('./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro');
    expect(haproxy.ports?.map((p) => p.split(':').at(-1))).toEqual(expect.arrayContaining(['8080', '1883', '28801']));
  });
});

describe('deploy/haproxy.cfg', () => {
  const sections = haproxySections(read('deploy/haproxy.cfg'));
  const defaults = sections.get('defaults') ?? [];
  const timeout = (name: string) => {
    const v = defaults.find((l) => l.startsWith(`timeout ${name} `))?.split(' ')[2] ?? '';
    const m = /^(\d+)(ms|s|m|h)?$/.exec(v);
    return m ? Number(m[1]) * { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[m[2] ?? 'ms']! : 0;
  };

  it("fits its connections into the container's open-file limit (two sockets each)", () => {
    const maxconn = Number((sections.get('global') ?? []).find((l) => l.startsWith('maxconn '))?.split(' ')[1]);
    const nofile = (services.haproxy as { ulimits?: { nofile?: { soft?: number; hard?: number } } }).ulimits?.nofile;
    expect(maxconn).toBeGreaterThan(0);
    expect(nofile?.soft).toBeGreaterThan(2 * maxconn);
    expect(nofile?.hard).toBeGreaterThanOrEqual(nofile?.soft ?? Infinity);
  });

  it('balances in TCP mode with long idle timeouts', () => {
    expect(defaults).toContain('mode tcp');
    // Idle devices: the longest MQTT keep-alive a broker honours (65535 s, waited one and a half times).
    expect(timeout('client')).toBeGreaterThanOrEqual(65_535_000 * 1.5);
    expect(timeout('server')).toBeGreaterThanOrEqual(65_535_000 * 1.5);
    expect(timeout('connect')).toBeGreaterThan(0);
  });

  for (const port of ['8080', '1883', '28801']) {
    it(`sends port ${port} to the three nodes, least connections first, checking /readyz`, () => {
      const frontend = [...sections].find(([, lines]) => lines.includes(`bind :${port}`));
      expect(frontend, `a frontend binds :${port}`).toBeDefined();
      expect(frontend![0]).toMatch(/^frontend /);
      const backendName = frontend![1].find((l) => l.startsWith('default_backend '))?.split(' ')[1];
      const backend = sections.get(`backend ${backendName}`) ?? [];
      expect(backend).toContain('balance leastconn');
      expect(backend).toContain('option httpchk GET /readyz');
      expect(backend).toContain('http-check expect status 200');
      const servers = backend.filter((l) => l.startsWith('server '));
      expect(servers.map((l) => l.split(' ')[2]).sort()).toEqual(appNodes.map((n) => `${n}:${port}`).sort());
      // The health check asks each node's HTTP port, and every server is checked.
      const serverDefaults = defaults.find((l) => l.startsWith('default-server ')) ?? '';
      expect(serverDefaults).toMatch(/ check( |$)/);
      expect(serverDefaults).toMatch(/ port 8080( |$)/);
      // The mode of the frontend (TCP) is not overridden.
      expect(frontend![1].some((l) => l.startsWith('mode ') && l !== 'mode tcp')).toBe(false);
    });
  }
});
