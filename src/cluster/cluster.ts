import os from 'node:os';
import type { Logger } from 'pino';
import { connect, type NatsConnection, type Msg } from '@nats-io/transport-node';
import { Kvm, type KV } from '@nats-io/kv';

/**
 * Cluster mode (docs/cluster.md): the nodes of one cluster share one PostgreSQL and talk through NATS.
 * This is the one connection of a node to NATS, the names it uses (every subject, bucket and stream
 * starts with CLUSTER_NAME, so clusters and test runs sharing a NATS server never see each other), the
 * node's heartbeat (which nodes are alive) and leases (jobs that run on one node at a time).
 *
 * Nothing here is a protocol of our own between nodes: requests, broadcasts and the key-value buckets
 * are NATS's (core NATS and JetStream KV).
 */
export interface ClusterOptions {
  /** NATS_URL: one URL or several separated by commas. */
  servers: string;
  /** CLUSTER_NAME. */
  name: string;
  /** NODE_ID; default host name and process id. */
  nodeId?: string | undefined;
  logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** How long a node stays "alive" without a heartbeat, and a lease without renewal (docs/cluster.md §3). */
  leaseMs?: number;
  /** How long a request to another node may take before it counts as failed. */
  requestTimeoutMs?: number;
  /** Copies NATS keeps of each bucket (NATS_KV_REPLICAS): 1 on one NATS server, 3 on a cluster of three. */
  replicas?: number;
  /** NATS_TLS_CA_FILE: the CA of the NATS servers' certificates (TLS then required). */
  caFile?: string | undefined;
}

export const CLUSTER_DEFAULTS = { leaseMs: 8_000, requestTimeoutMs: 5_000 } as const;

/** The cluster is not reachable (NATS down, or the other node did not answer): an operation across nodes failed. */
export class ClusterUnavailable extends Error {
  override name = 'ClusterUnavailable';
}

export function defaultNodeId(): string {
  return `${os
    .hostname()
    .replace(/[^A-Za-z0-9_-]/g, '-')
    .slice(0, 48)}-${process.pid}`;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
export const encodeJson = (value: unknown): Uint8Array => encoder.encode(JSON.stringify(value));
export const decodeJson = <T>(data: Uint8Array): T => JSON.parse(decoder.decode(data)) as T;

export interface Lease {
  readonly name: string;
  /** Whether this node holds it now. */
  readonly held: boolean;
  /** Gives it up (stop). */
  release(): Promise<void>;
}

export type ClusterStatus = 'connected' | 'reconnecting';

export interface Cluster {
  readonly name: string;
  readonly nodeId: string;
  readonly leaseMs: number;
  readonly requestTimeoutMs: number;
  readonly nc: NatsConnection;
  /** `<CLUSTER_NAME>.<parts…>`: every subject of this cluster. */
  subject(...parts: string[]): string;
  /** A key-value bucket of this cluster (created on first use; `<CLUSTER_NAME>_<name>`). */
  bucket(name: string, options?: { ttlMs?: number }): Promise<KV>;
  readonly status: ClusterStatus;
  /**
   * Called whenever NATS connects again after an outage (what was missed may be re-published), with when
   * this node lost it (epoch ms): what changed since then was not heard.
   */
  onReconnect(listener: (outage: { since: number }) => void): () => void;
  /** The nodes whose heartbeat is fresh, this one included. */
  aliveNodes(): ReadonlySet<string>;
  isAlive(nodeId: string): boolean;
  /** Called with the node id when a node's heartbeat ends (killed, or cut off from NATS). */
  onNodeLost(listener: (nodeId: string) => void): () => void;
  /**
   * Tells a node its devices were taken offline as a lost node's: if it is alive after all (it stalled, or its
   * heartbeat did not get through), it re-records and re-asserts what it holds, as after an outage.
   */
  tellReaped(nodeId: string): void;
  /**
   * Holds the lease `name` whenever no other live node does: `held` turns true within about one lease time
   * after its holder died. Whoever holds it runs the job; the others wait (docs/cluster.md §3).
   */
  lease(name: string, onChange?: (held: boolean) => void): Lease;
  /** Subscribes; the handler's errors are logged, never thrown into NATS's loop. */
  subscribe(subject: string, handler: (msg: Msg) => unknown, options?: { queue?: string }): () => void;
  /** A request to one subscriber, answered as JSON; ClusterUnavailable when nobody answers in time. */
  request<T>(subject: string, body: unknown, timeoutMs?: number): Promise<T>;
  /** Publishes JSON, fire and forget (false when NATS is not connected: nothing was sent). */
  publish(subject: string, body: unknown): boolean;
  close(): Promise<void>;
}

/**
 * How to reach NATS from NATS_URL (docs/cluster.md §6): the servers, comma-separated; the credentials written
 * in a URL (`nats://user:password@host:4222`, or `nats://token@host:4222`), which the client takes apart from
 * the URLs; `tls://` URLs make TLS required (NATS_TLS_CA_FILE: the CA that signed the servers' certificates).
 * `shown` is the list without credentials, for messages and logs.
 */
export function natsTarget(list: string, caFile?: string) {
  const servers: string[] = [];
  const shown: string[] = [];
  let user: string | undefined;
  let pass: string | undefined;
  let token: string | undefined;
  let tls = false;
  for (const raw of list.split(',').map((x) => x.trim())) {
    if (!raw) continue;
    let url: URL;
    try {
      url = new URL(raw.includes('://') ? raw : `nats://${raw}`);
    } catch {
      servers.push(raw);
      shown.push(raw.replace(/^[^@]*@/, ''));
      continue;
    }
    if (url.protocol === 'tls:') tls = true;
    if (url.username && url.password) {
      user = decodeURIComponent(url.username);
      pass = decodeURIComponent(url.password);
    } else if (url.username) token = decodeURIComponent(url.username);
    url.username = '';
    url.password = '';
    const bare = `${url.protocol}//${url.host}`;
    servers.push(bare);
    shown.push(bare);
  }
  return {
    servers,
    shown: shown.join(', '),
    options: {
      ...(user !== undefined ? { user, pass } : {}),
      ...(token !== undefined ? { token } : {}),
      ...(tls || caFile ? { tls: caFile ? { caFile } : {} } : {}),
    },
  };
}

/** Connects to NATS (failing at once with a clear message when it cannot) and starts the heartbeat. */
export async function connectCluster(options: ClusterOptions): Promise<Cluster> {
  const { name, logger } = options;
  const nodeId = options.nodeId ?? defaultNodeId();
  const leaseMs = options.leaseMs ?? CLUSTER_DEFAULTS.leaseMs;
  const requestTimeoutMs = options.requestTimeoutMs ?? CLUSTER_DEFAULTS.requestTimeoutMs;
  const target = natsTarget(options.servers, options.caFile);
  const servers = target.servers;
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers,
      ...target.options,
      name: `${name}:${nodeId}`,
      // Reconnect for ever: an outage of NATS ends by itself (docs/cluster.md §5); meanwhile this node
      // serves what it holds.
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      timeout: 5_000,
      pingInterval: 5_000,
      maxPingOut: 2,
    });
  } catch (err) {
    throw new ClusterUnavailable(
      `cannot reach NATS at ${target.shown} (${(err as Error).message}): check NATS_URL, or unset it to run one node`,
    );
  }
  // A node is alive while its heartbeat key changes: the revision seen, and when (this node's clock: no skew).
  const seen = new Map<string, { revision: number; at: number }>();
  let status: ClusterStatus = 'connected';
  const reconnectListeners = new Set<(outage: { since: number }) => void>();
  /** When NATS was lost (the outage a reconnect ends). */
  let lostAt = Date.now();
  const lostListeners = new Set<(nodeId: string) => void>();
  /**
   * After anything that may have made the others judge this node lost — a NATS outage, a stall of this process
   * beyond a lease, a reaper's notice — the others get a full lease to beat again, and the reconnect listeners
   * re-record and re-assert what this node holds (docs/cluster.md §3, §5).
   */
  function rejoined(since: number) {
    const now = Date.now();
    for (const last of seen.values()) last.at = now;
    for (const l of reconnectListeners) {
      try {
        l({ since });
      } catch (err) {
        logger.error({ err }, 'reconnect listener failed');
      }
    }
  }
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnecting') {
        if (status !== 'reconnecting') {
          logger.warn({ nats: s.type }, 'NATS connection lost; reconnecting');
          lostAt = Date.now();
        }
        status = 'reconnecting';
      } else if (s.type === 'reconnect') {
        status = 'connected';
        // What this node could not see while cut off is no sign of the others' death: each gets a full lease
        // from now to show its heartbeat again (else a node would be judged lost the moment NATS returns).
        logger.info({ nats: s.type }, 'NATS connection back');
        rejoined(lostAt);
      }
    }
  })().catch((err: unknown) => logger.error({ err }, 'NATS status loop ended'));

  const subject = (...parts: string[]) => [name, ...parts].join('.');
  const kvm = new Kvm(nc);
  const buckets = new Map<string, Promise<KV>>();
  const bucket = (b: string, o: { ttlMs?: number } = {}) => {
    let kv = buckets.get(b);
    if (!kv) {
      kv = kvm.create(`${name}_${b}`, {
        history: 1,
        replicas: options.replicas ?? 1,
        ...(o.ttlMs ? { ttl: o.ttlMs } : {}),
      });
      kv.catch(() => buckets.delete(b));
      buckets.set(b, kv);
    }
    return kv;
  };

  // Heartbeat: every node puts its key into a bucket whose entries expire after a lease; the keys present
  // are the live nodes. Others learn of a loss when a key has not been renewed for a lease.
  const nodes = await bucket('nodes', { ttlMs: leaseMs });
  /** When this node's heartbeat last got through: a longer gap than a lease may have had it judged lost. */
  let lastBeat = Date.now();
  const beat = async () => {
    try {
      await nodes.put(nodeId, encodeJson({ node: nodeId, ts: Date.now() }));
      const previous = lastBeat;
      lastBeat = Date.now();
      if (lastBeat - previous >= leaseMs && status === 'connected') {
        logger.warn({ silentMs: lastBeat - previous }, 'this node went without a heartbeat for a lease; re-asserting');
        rejoined(previous);
      }
    } catch (err) {
      if (status === 'connected') logger.warn({ err }, 'cluster heartbeat failed');
    }
  };
  /** Node `n` is gone: the others take over what it held (docs/cluster.md §3). */
  const lose = (n: string) => {
    if (!seen.delete(n)) return;
    for (const l of lostListeners) {
      try {
        l(n);
      } catch (err) {
        logger.error({ err }, 'node-lost listener failed');
      }
    }
  };
  const scan = async () => {
    try {
      const now = Date.now();
      for await (const k of await nodes.keys()) {
        const entry = await nodes.get(k);
        if (!entry || entry.operation !== 'PUT') continue;
        const last = seen.get(k);
        if (!last || last.revision !== entry.revision) seen.set(k, { revision: entry.revision, at: now });
      }
      for (const [n, last] of seen) {
        if (n === nodeId || now - last.at < leaseMs) continue;
        logger.warn({ lostNode: n }, 'a node of the cluster stopped beating');
        lose(n);
      }
    } catch (err) {
      if (status === 'connected') logger.warn({ err }, 'cluster membership scan failed');
    }
  };
  // Five beats a lease: a node killed is known lost within a lease and a beat (docs/cluster.md §3).
  const beatEvery = Math.max(100, Math.floor(leaseMs / 5));
  // Two live nodes under one NODE_ID would reset and reap each other's devices: a key of this id that is
  // still beating refuses the start (the key of this node's own earlier run stands still).
  const before = await nodes.get(nodeId).catch(() => null);
  if (before?.operation === 'PUT') {
    await new Promise((r) => setTimeout(r, beatEvery * 1.5));
    const after = await nodes.get(nodeId).catch(() => null);
    if (after?.operation === 'PUT' && after.revision !== before.revision) {
      await nc.close().catch(() => {});
      throw new ClusterUnavailable(
        `NODE_ID ${nodeId} is in use by a live node of cluster ${name}: give every node its own NODE_ID`,
      );
    }
  }
  await beat();
  // One beat at a time: while NATS is slow or away, beats are skipped rather than queued.
  let beating: Promise<void> | undefined;
  const heartbeat = setInterval(() => {
    beating ??= beat()
      .then(scan)
      .finally(() => (beating = undefined));
  }, beatEvery);
  heartbeat.unref();
  await scan();

  // A node stopping cleanly says so: the others take over its timers and jobs at once, not a lease later.
  const leftSub = nc.subscribe(subject('nodes', 'left'), {
    callback: (err, msg) => {
      if (err) return;
      let left: unknown;
      try {
        left = decodeJson<{ node?: unknown }>(msg.data).node;
      } catch {
        return;
      }
      if (typeof left !== 'string' || left === nodeId) return;
      logger.info({ lostNode: left }, 'a node of the cluster left');
      lose(left);
    },
  });
  let lastReapedRejoin = 0;
  // The reaper's notice to a node judged lost that is alive after all.
  const reapedSub = nc.subscribe(subject('node', nodeId, 'reaped'), {
    callback: (err) => {
      if (err) return;
      // At most once a lease: a notice repeated (or sent by anyone on NATS) costs no more than one re-assert.
      const now = Date.now();
      if (now - lastReapedRejoin < leaseMs) return;
      lastReapedRejoin = now;
      logger.warn({}, 'the cluster took this node for lost; re-asserting what it holds');
      rejoined(now - leaseMs - beatEvery);
    },
  });

  const leasesBucket = await bucket('leases', { ttlMs: leaseMs });
  const leases = new Set<{ stop(): Promise<void> }>();

  const cluster: Cluster = {
    name,
    nodeId,
    leaseMs,
    requestTimeoutMs,
    nc,
    subject,
    bucket,
    get status() {
      return status;
    },
    onReconnect(l) {
      reconnectListeners.add(l);
      return () => reconnectListeners.delete(l);
    },
    aliveNodes() {
      return new Set([nodeId, ...seen.keys()]);
    },
    isAlive: (n) => n === nodeId || seen.has(n),
    tellReaped(n) {
      if (status === 'connected' && !nc.isClosed()) nc.publish(subject('node', n, 'reaped'));
    },
    onNodeLost(l) {
      lostListeners.add(l);
      return () => lostListeners.delete(l);
    },
    lease(leaseName, onChange) {
      let revision: number | undefined;
      let held = false;
      let stopped = false;
      const set = (h: boolean) => {
        if (h === held) return;
        held = h;
        logger.info({ lease: leaseName, held: h }, h ? 'lease taken' : 'lease lost');
        onChange?.(h);
      };
      /** When the last renewal that got through was sent: the lease holds a lease from then, no longer. */
      let renewedAt = 0;
      let ticking = false;
      const tick = async () => {
        // One renewal at a time: a slow one overtaken by the next would fail against its own revision.
        if (stopped || ticking) return;
        ticking = true;
        const sent = Date.now();
        try {
          const next =
            revision !== undefined
              ? await leasesBucket.update(leaseName, encodeJson({ node: nodeId }), revision)
              : await leasesBucket.create(leaseName, encodeJson({ node: nodeId }));
          if (stopped) return;
          revision = next;
          renewedAt = sent;
          set(true);
        } catch {
          if (stopped) return;
          // Refused (another node holds it), or no answer: it is ours only if the key still says so.
          const entry = await leasesBucket.get(leaseName).catch(() => null);
          const mine = entry?.operation === 'PUT' && decodeJson<{ node?: string }>(entry.value).node === nodeId;
          if (mine && entry) {
            revision = entry.revision;
          } else {
            revision = undefined;
            set(false);
          }
        } finally {
          ticking = false;
        }
      };
      const timer = setInterval(() => void tick(), beatEvery);
      timer.unref();
      void tick();
      const handle = {
        name: leaseName,
        get held() {
          // A holder whose renewals stopped getting through (a stall, NATS away) stops acting before its
          // lease can have passed to another node.
          if (held && Date.now() - renewedAt >= leaseMs - beatEvery) set(false);
          return held;
        },
        async stop() {
          stopped = true;
          clearInterval(timer);
          if (held && revision !== undefined) {
            await leasesBucket.delete(leaseName, { previousSeq: revision }).catch(() => {});
          }
          revision = undefined;
          set(false);
        },
        release() {
          leases.delete(handle);
          return handle.stop();
        },
      };
      leases.add(handle);
      return handle;
    },
    subscribe(subj, handler, o = {}) {
      const sub = nc.subscribe(subj, {
        ...(o.queue ? { queue: o.queue } : {}),
        callback: (err, msg) => {
          if (err) {
            logger.warn({ err, subject: subj }, 'cluster subscription error');
            return;
          }
          try {
            const r = handler(msg);
            if (r instanceof Promise)
              r.catch((e: unknown) => logger.error({ err: e, subject: subj }, 'cluster message handler failed'));
          } catch (e) {
            logger.error({ err: e, subject: subj }, 'cluster message handler failed');
          }
        },
      });
      return () => sub.unsubscribe();
    },
    async request<T>(subj: string, body: unknown, timeoutMs = requestTimeoutMs): Promise<T> {
      if (status !== 'connected') throw new ClusterUnavailable('the cluster is unreachable (NATS is down)');
      try {
        const reply = await nc.request(subj, encodeJson(body), { timeout: timeoutMs });
        return decodeJson<T>(reply.data);
      } catch (err) {
        throw new ClusterUnavailable(`the node holding it did not answer (${(err as Error).message})`);
      }
    },
    publish(subj, body) {
      if (status !== 'connected' || nc.isClosed()) return false;
      try {
        nc.publish(subj, encodeJson(body));
        return true;
      } catch {
        return false;
      }
    },
    async close() {
      clearInterval(heartbeat);
      reapedSub.unsubscribe();
      leftSub.unsubscribe();
      // A beat in flight during an outage must not hold the shutdown for long.
      await Promise.race([beating, new Promise((r) => setTimeout(r, 2_000).unref())]);
      await Promise.all([...leases].map((l) => l.stop()));
      // Leaving: our heartbeat key goes, and the others hear it at once instead of a lease later.
      await nodes.delete(nodeId).catch(() => {});
      if (status === 'connected' && !nc.isClosed()) nc.publish(subject('nodes', 'left'), encodeJson({ node: nodeId }));
      await nc.drain().catch(() => {});
    },
  };
  return cluster;
}
