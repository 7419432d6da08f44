import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, beforeAll } from 'vitest';
import { createPrivatePostgres, type PrivatePostgres } from './db.ts';
import type { Cluster } from '../../src/cluster/cluster.ts';
import { serverEnv, spawnTs, type Spawned } from './process.ts';
import { until } from './wait.ts';

/**
 * Several server processes of one cluster (docs/cluster.md): one PostgreSQL database of their own (on the
 * server of TEST_DATABASE_URL) and the NATS server of NATS_TEST_URL (default nats://127.0.0.1:4222), under a
 * CLUSTER_NAME unique to the run, so runs sharing the NATS server never see each other.
 *
 * Without TEST_DATABASE_URL or a reachable NATS the cluster tests are skipped (`clusterSkip` says why), unless
 * REQUIRE_CLUSTER_TESTS=1 (CI's PostgreSQL pass), where that is a failure instead.
 */
export const NATS_TEST_URL = process.env.NATS_TEST_URL || 'nats://127.0.0.1:4222';
export const CLUSTER_PLATFORM_TOKEN = 'cluster-platform-token-0123456789';
export const CLUSTER_JWT_SECRET = 'cluster-jwt-secret-0123456789abcdefghij';

/** Whether a NATS server answers at (the first server of) `url` with its INFO line. */
export async function natsReachable(url: string): Promise<boolean> {
  const u = new URL(url.split(',')[0]!.trim());
  return new Promise((resolve) => {
    const s = net.connect(Number(u.port || 4222), u.hostname);
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(2_000, () => done(false));
    s.once('data', (b) => done(b.toString().startsWith('INFO')));
    s.once('error', () => done(false));
  });
}

/** Why the cluster tests cannot run here, or undefined when they can. Throws under REQUIRE_CLUSTER_TESTS=1. */
export async function clusterSkip(): Promise<string | undefined> {
  let why: string | undefined;
  if (!process.env.TEST_DATABASE_URL) why = 'cluster mode needs PostgreSQL: set TEST_DATABASE_URL';
  else if (!(await natsReachable(NATS_TEST_URL))) why = `no NATS server at ${NATS_TEST_URL} (set NATS_TEST_URL)`;
  if (why && process.env.REQUIRE_CLUSTER_TESTS === '1') throw new Error(`REQUIRE_CLUSTER_TESTS=1 but ${why}`);
  return why;
}

export interface ClusterNode {
  id: string;
  proc: Spawned;
  http: string;
  mqttUrl: string;
  tcpPort: number;
  /** Stops it: SIGTERM (graceful) or SIGKILL (a crash); resolves once the process has exited. */
  stop(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
}

export interface TestCluster {
  name: string;
  databaseUrl: string;
  nodes: ClusterNode[];
  /** Starts one more node of the cluster (also after a kill, under a new or the same id). */
  addNode(id?: string, extra?: Record<string, string>): Promise<ClusterNode>;
  /** Kills every node, drops the database and removes the data directories. */
  close(): Promise<void>;
}

export async function startCluster(
  count: number,
  options: { extraEnv?: Record<string, string>; natsUrl?: string } = {},
): Promise<TestCluster> {
  const pg: PrivatePostgres | undefined = await createPrivatePostgres();
  if (!pg) throw new Error('startCluster needs TEST_DATABASE_URL');
  const name = `t${process.pid}${randomBytes(3).toString('hex')}`;
  const dirs: string[] = [];
  const procs: Spawned[] = [];
  const nodes: ClusterNode[] = [];
  let seq = 0;
  const addNode = async (id = `n${++seq}`, extra: Record<string, string> = {}) => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), `iot-cluster-${id}-`));
    dirs.push(dataDir);
    const proc = spawnTs(
      'src/main.ts',
      [],
      serverEnv(dataDir, pg.url, {
        NATS_URL: options.natsUrl ?? NATS_TEST_URL,
        CLUSTER_NAME: name,
        NODE_ID: id,
        JWT_SECRET: CLUSTER_JWT_SECRET,
        PLATFORM_TOKEN: CLUSTER_PLATFORM_TOKEN,
        MQTT_RATE_LIMIT: '100000',
        ...options.extraEnv,
        ...extra,
      }),
    );
    procs.push(proc);
    const [, http] = await proc.waitFor(/Server listening at (http:\/\/127\.0\.0\.1:\d+)/, 90_000);
    const [, mqttUrl] = await proc.waitFor(/MQTT listening at (mqtt:\/\/127\.0\.0\.1:\d+)/, 30_000);
    const [, tcp] = await proc.waitFor(/TCP listening at tcp:\/\/127\.0\.0\.1:(\d+)/, 30_000);
    const node: ClusterNode = {
      id,
      proc,
      http: http!,
      mqttUrl: mqttUrl!,
      tcpPort: Number(tcp),
      async stop(signal = 'SIGTERM') {
        if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill(signal);
        await proc.exit();
      },
    };
    nodes.push(node);
    return node;
  };
  try {
    // One at a time: the first applies the migrations, the others find them applied.
    for (let i = 0; i < count; i++) await addNode();
  } catch (err) {
    for (const p of procs) p.child.kill('SIGKILL');
    await pg.drop().catch(() => {});
    throw err;
  }
  return {
    name,
    databaseUrl: pg.url,
    nodes,
    addNode,
    async close() {
      for (const p of procs) p.child.kill('SIGKILL');
      await Promise.all(procs.map((p) => p.exit()));
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
      await pg.drop().catch(() => {});
    },
  };
}

/** The project API of a cluster: a project made through the platform API of `node`, and calls on any node. */
export async function clusterProject(http: string) {
  const created = await apiCall(http, 'POST', '/platform/v1/projects', CLUSTER_PLATFORM_TOKEN, { name: 'cluster' });
  const login = (await fetch(`${http}/api/v1/access_token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(created.app),
  }).then((r) => r.json())) as { info: { access_token: string } };
  const token = login.info.access_token;
  return {
    project: created as { id: string; project_key: string; app: Record<string, string> },
    token,
    /** A device and its MQTT credentials (user name = access token, password = project key). */
    async device(name: string, via = http, extra: Record<string, unknown> = {}) {
      const d = (await apiCall(via, 'POST', '/api/v1/device', token, { name, ...extra })) as { id: string };
      const cert = (await apiCall(via, 'GET', `/api/v1/device/${d.id}/certificate`, token)) as { access_token: string };
      return { id: d.id, accessToken: cert.access_token, projectKey: created.project_key as string };
    },
    call: (via: string, method: string, url: string, body?: unknown) => apiRaw(via, method, url, token, body),
  };
}

/** A call answering the whole envelope (`result`, `errcode`, `info`…) and the HTTP status. */
export async function apiRaw(base: string, method: string, url: string, token: string, body?: unknown) {
  const res = await fetch(base + url, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const json = (await res.json()) as { result: boolean; errcode?: number; message?: string; info?: any }; // eslint-disable-line @typescript-eslint/no-explicit-any -- API JSON
  return { status: res.status, ...json };
}

/** A call that must succeed; answers `info`. */
export async function apiCall(base: string, method: string, url: string, token: string, body?: unknown) {
  const json = await apiRaw(base, method, url, token, body);
  if (!json.result) throw new Error(`${method} ${url} failed: ${JSON.stringify(json)}`);
  return json.info;
}

export interface NatsProxy {
  /** nats://127.0.0.1:<port>: give it to the nodes as NATS_URL. */
  url: string;
  /** A NATS outage as the nodes see it: every connection through the proxy ends and new ones are refused. */
  cut(): void;
  /** NATS is back: connections pass again. */
  restore(): void;
  close(): Promise<void>;
}

/** A TCP proxy in front of the NATS server of NATS_TEST_URL, to cut the nodes off NATS and let them back. */
export async function natsProxy(target = NATS_TEST_URL): Promise<NatsProxy> {
  const t = new URL(target.split(',')[0]!.trim());
  const sockets = new Set<net.Socket>();
  let open = true;
  const server = net.createServer((client) => {
    if (!open) return void client.destroy();
    const upstream = net.connect(Number(t.port || 4222), t.hostname);
    sockets.add(client);
    sockets.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `nats://127.0.0.1:${port}`,
    cut() {
      open = false;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    restore() {
      open = true;
    },
    async close() {
      open = false;
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** What a cluster test file holds open: a cluster, and what its tests register to be closed with it. */
export interface ClusterSuite {
  /** Why the cluster tests cannot run here (`clusterSkip`), or undefined when they can. */
  skip: string | undefined;
  /** The running cluster: started in beforeAll, so read it inside hooks and tests only. */
  readonly cluster: TestCluster;
  /** The proxy the nodes reach NATS through, with `natsProxy: true`. */
  readonly proxy: NatsProxy;
  /** MQTT clients, ended in afterAll. */
  clients: MqttClient[];
  /** An MQTT client logged in with these credentials (no reconnecting), ended in afterAll. */
  mqtt(url: string, username: string, password: string, extra?: IClientOptions): Promise<MqttClient>;
  /** Raw TCP sockets, destroyed in afterAll. */
  sockets: net.Socket[];
  /** Event streams (or anything with `close()`), closed in afterAll. */
  streams: { close(): unknown }[];
  /** Runs `fn` in afterAll, once the cluster is closed. */
  afterClose(fn: () => unknown): void;
}

/**
 * The beforeAll/afterAll of a cluster test file: unless skipped, starts a cluster of `count` nodes (behind a
 * NATS proxy with `natsProxy: true`) and runs `setup` on it; afterAll ends the clients, sockets and streams
 * the tests registered, closes the cluster, then runs what `afterClose` was given.
 */
export async function clusterSuite(
  count: number,
  options: {
    extraEnv?: Record<string, string>;
    natsProxy?: boolean;
    setup?: (cluster: TestCluster) => Promise<void>;
    timeout?: number;
  } = {},
): Promise<ClusterSuite> {
  const skip = await clusterSkip();
  let cluster: TestCluster | undefined;
  let proxy: NatsProxy | undefined;
  const later: Array<() => unknown> = [];
  const suite: ClusterSuite = {
    skip,
    get cluster() {
      if (!cluster) throw new Error('the cluster is not started (skipped, or read outside a hook or test)');
      return cluster;
    },
    get proxy() {
      if (!proxy) throw new Error('the cluster has no NATS proxy (clusterSuite option natsProxy)');
      return proxy;
    },
    clients: [],
    async mqtt(url, username, password, extra = {}) {
      const c = await mqtt.connectAsync(url, { username, password, reconnectPeriod: 0, ...extra });
      suite.clients.push(c);
      return c;
    },
    sockets: [],
    streams: [],
    afterClose: (fn) => void later.push(fn),
  };
  beforeAll(async () => {
    if (skip) return;
    if (options.natsProxy) proxy = await natsProxy();
    cluster = await startCluster(count, { extraEnv: options.extraEnv, natsUrl: proxy?.url });
    await options.setup?.(cluster);
  }, options.timeout ?? 180_000);
  afterAll(async () => {
    for (const c of suite.clients) c.end(true);
    for (const s of suite.sockets) s.destroy();
    for (const s of suite.streams) await s.close();
    await cluster?.close();
    await proxy?.close();
    for (const fn of later) await fn();
  });
  return suite;
}

/** Until every one of these cluster connections sees every other alive (their heartbeat scans). */
export async function untilNodesSee(clusters: Array<Pick<Cluster, 'nodeId' | 'isAlive'>>): Promise<void> {
  await until(() => clusters.every((c) => clusters.every((o) => c.isAlive(o.nodeId))), 'the nodes to see each other', {
    timeout: 15_000,
  });
}

/** Stops nodes of this process: their session directories, then their cluster connections. */
export async function stopNodes(nodes: Array<{ cluster: Pick<Cluster, 'close'>; directory: { stop(): void } }>) {
  for (const n of nodes) n.directory.stop();
  for (const n of nodes) await n.cluster.close();
}

/** One alarm entry a webhook target received: the entry id, its status (1 raised, 0 ended) and its device. */
export interface WebhookPost {
  alarmId: string;
  status: number;
  deviceId: string;
}

/**
 * A local webhook receiver for alarm notification targets (give the nodes
 * `ALARM_WEBHOOK_ALLOW_NETWORKS=127.0.0.1/32`): `posts` holds every POST in arrival order; `close` ends it.
 */
export async function webhookReceiver(): Promise<{ url: string; posts: WebhookPost[]; close(): Promise<void> }> {
  const posts: WebhookPost[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString()) as {
        alarm: { id: string; alarm_status: number; device_id: string };
      };
      posts.push({ alarmId: body.alarm.id, status: body.alarm.alarm_status, deviceId: body.alarm.device_id });
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/hook`,
    posts,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export type ClusterProjectApi = Awaited<ReturnType<typeof clusterProject>>;

/**
 * `clusterSuite` with a project made through the first node before `setup` runs: `project()` answers it
 * (inside hooks and tests only), `nodes()` the cluster's nodes.
 */
export async function clusterProjectSuite(count: number, options: Parameters<typeof clusterSuite>[1] = {}) {
  let made: ClusterProjectApi | undefined;
  const suite = await clusterSuite(count, {
    ...options,
    setup: async (cluster) => {
      made = await clusterProject(cluster.nodes[0]!.http);
      await options.setup?.(cluster);
    },
  });
  return {
    suite,
    project(): ClusterProjectApi {
      if (!made) throw new Error('the project is made in beforeAll: read it inside hooks and tests');
      return made;
    },
    nodes: () => suite.cluster.nodes,
  };
}

/**
 * A gateway device and one sub-device attached to it at address `s1` (device-protocol.md §8), with their
 * device types, made through `via`.
 */
export async function gatewayWithSub(p: ClusterProjectApi, via: string) {
  const gwType = await apiCall(via, 'POST', '/api/v1/device_type', p.token, { name: 'gw', conn_type: '3' });
  const subType = await apiCall(via, 'POST', '/api/v1/device_type', p.token, { name: 'sub', conn_type: '2' });
  const gw = await p.device('gateway', via, { type: gwType.id });
  const sub = await p.device('sub', via, { type: subType.id });
  await apiCall(via, 'POST', `/api/v1/device/${gw.id}/sub_devices`, p.token, { device: sub.id, address: 's1' });
  return { gw, sub };
}
