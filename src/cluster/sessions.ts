import type { KV } from '@nats-io/kv';
import type { Msg } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { DeviceSession, SessionDirectory, SessionRegistry, Transport } from '../domain/delivery/sessions.ts';
import { DAY_MS } from '../lib/time.ts';
import { ClusterUnavailable, decodeJson, encodeJson, type Cluster } from './cluster.ts';

/**
 * The session directory of a cluster (docs/cluster.md): which node holds each device's session, so a device
 * connected to any node is reachable from every node's API, and the newest login of a device wins across
 * nodes (device-protocol.md §2).
 *
 * - The NATS KV bucket `sessions` maps a device id to the node holding its session. A node records a device
 *   when its session attaches: the revision of that put is the session's epoch, one order of logins across
 *   the cluster. It removes the entry when the session ends, only while the entry is still its own (a
 *   delete expecting that revision). An entry naming a node that is not alive counts as absent.
 * - After the put the node broadcasts a claim (device, node, epoch); a node holding an older session of the
 *   device closes it as replaced. Claims are remembered a while, so a session whose put completes after a
 *   newer login's claim (a lower epoch) closes itself.
 * - A session on another node is reached through it: send() is a request to the holder, answered once its
 *   own send succeeded (or with the failure).
 */
export interface ClusterSessionsOptions {
  cluster: Cluster;
  /** This node's registry (built with this directory: given lazily). */
  local: () => Pick<SessionRegistry, 'get' | 'supersede' | 'kickLocal' | 'kickProjectLocal' | 'local'>;
  /** The session's epoch, known once its put is done (presence orders connects and disconnects by it). */
  onEpoch?: (deviceId: string, epoch: number) => void;
  /** Turns ClusterUnavailable into the domain's error (composition: ServiceUnavailable). */
  unavailable: (err: ClusterUnavailable) => Error;
  logger: Pick<Logger, 'warn' | 'error' | 'info'>;
  /** How long a claim of another node is remembered (a late put of ours compares with it). */
  claimMemoryMs?: number;
  /**
   * A device's message bucket follows it (docs/cluster.md §7): the node whose session a newer login replaced
   * sends what is left of it to the claiming node, which adopts it for its session of the device.
   */
  buckets?: {
    export(deviceId: string): unknown;
    adopt(session: DeviceSession, state: unknown): void;
  };
  /**
   * Of a project's devices held here, those gone, disabled or changed since `since` (docs/cluster.md §5): after
   * a NATS outage their sessions close, since the kicks sent meanwhile did not reach this node.
   */
  changedSince?: (projectId: string, deviceIds: string[], since: number) => Promise<string[]>;
}

/** The value of a directory entry. */
interface Entry {
  node: string;
  projectId: string;
  transport: Transport;
}

interface Claim {
  deviceId: string;
  node: string;
  epoch: number;
}

/** The body of `<cluster>.node.<id>.send` and its answer. */
interface SendRequest {
  deviceId: string;
  topic: string;
  /** base64 */
  payload: string;
}
type SendAnswer = { ok: true } | { ok: false; error: string };

/** What this node knows of one of its sessions in the directory. */
interface Recorded {
  /** The revision of its put (its epoch), once known. */
  epoch?: number;
  /** It ended before its put completed: the entry goes once the put is known. */
  ended?: boolean;
}

const TRANSPORTS = new Set<string>(['mqtt', 'tcp']);
/** The keys of a NATS KV bucket. */
const KEY = /^[-/_=.a-zA-Z0-9]+$/;

export interface ClusterSessions extends SessionDirectory {
  /** The epoch recorded for one of this node's sessions (tests, logs). */
  epochOf(session: DeviceSession): number | undefined;
  /** Resolves once every directory write started so far is done (tests, shutdown). */
  settled(): Promise<void>;
  /**
   * The greatest epoch the directory has given (its bucket's last revision). Lower than epochs stored in the
   * database when the bucket was made anew (NATS's store lost, a bucket re-created): those are then void.
   */
  lastEpoch(): Promise<number>;
  /** Stops listening to the other nodes. */
  stop(): void;
}

export function createClusterSessions({
  cluster,
  local,
  onEpoch,
  unavailable,
  logger,
  claimMemoryMs = 60_000,
  buckets,
  changedSince,
}: ClusterSessionsOptions): ClusterSessions {
  const me = cluster.nodeId;
  const subjects = {
    claim: cluster.subject('sessions', 'claim'),
    kick: cluster.subject('sessions', 'kick'),
    recheck: cluster.subject('sessions', 'recheck'),
    send: (node: string) => cluster.subject('node', node, 'send'),
    bucket: (node: string) => cluster.subject('node', node, 'bucket'),
  };
  let kv: Promise<KV> | undefined;
  const bucket = () => {
    if (!kv) {
      const created = cluster.bucket('sessions');
      created.catch(() => {
        if (kv === created) kv = undefined;
      });
      kv = created;
    }
    return kv;
  };
  const recorded = new WeakMap<DeviceSession, Recorded>();
  /** The newest claim of another node per device, and when it came (forgotten after claimMemoryMs). */
  const claims = new Map<string, Claim & { at: number }>();
  const pending = new Set<Promise<unknown>>();
  const track = <T>(p: Promise<T>) => {
    pending.add(p);
    void p.finally(() => pending.delete(p)).catch(() => {});
    return p;
  };

  const forgetOldClaims = (now: number) => {
    for (const [id, c] of claims) {
      if (now - c.at < claimMemoryMs) break;
      claims.delete(id);
    }
  };

  /** A newer login on another node holds the device: this node's session, if older, closes as replaced. */
  function applyClaim(claim: Claim) {
    const session = local().get(claim.deviceId);
    const epoch = session && recorded.get(session)?.epoch;
    if (session && epoch !== undefined && epoch < claim.epoch) {
      local().supersede(session, `replaced by a newer connection of the same device on node ${claim.node}`);
      const state = buckets?.export(claim.deviceId);
      if (state !== undefined) cluster.publish(subjects.bucket(claim.node), { deviceId: claim.deviceId, state });
    }
  }

  const entryOf = (session: DeviceSession): Entry => ({
    node: me,
    projectId: session.projectId,
    transport: session.transport,
  });

  async function remove(deviceId: string, epoch: number) {
    try {
      await (await bucket()).delete(deviceId, { previousSeq: epoch });
    } catch {
      // Replaced meanwhile by a newer login (its entry stays), or NATS is away: an entry naming this node
      // without a session here counts as absent (find), and a dead node's entries too.
    }
  }

  /** Removes the device's entry if it names this node while no session of the device is here. */
  async function forgetStale(deviceId: string) {
    try {
      const b = await bucket();
      const entry = await b.get(deviceId);
      if (!entry || entry.operation !== 'PUT' || local().get(deviceId)) return;
      if (decodeJson<Partial<Entry>>(entry.value).node === me)
        await b.delete(deviceId, { previousSeq: entry.revision });
    } catch {
      // A newer login wrote meanwhile, or NATS is away: nothing to clean now.
    }
  }

  /** Records the session: its put gives its epoch; then it claims the device (or yields to a newer claim). */
  async function record(session: DeviceSession, state: Recorded, put: (kv: KV) => Promise<number>, attempt = 1) {
    let epoch: number;
    try {
      epoch = await put(await bucket());
    } catch (err) {
      logger.warn({ deviceId: session.deviceId, err, attempt }, 'session directory: recording a session failed');
      // A put that timed out while NATS stays connected is tried again, while the session is still this
      // node's current one (after an outage the reconnect records every session anyway). Without its record
      // the device is unreachable from the other nodes and its older session elsewhere stays open.
      if (attempt < 6 && cluster.status === 'connected' && !state.ended && local().get(session.deviceId) === session) {
        await new Promise((r) => setTimeout(r, Math.min(8_000, 250 * 2 ** attempt)).unref());
        if (!state.ended && local().get(session.deviceId) === session) return record(session, state, put, attempt + 1);
      }
      return;
    }
    state.epoch = epoch;
    const { deviceId } = session;
    if (state.ended || local().get(deviceId) !== session) {
      // It ended (or a newer session of this node replaced it) while the put was on its way.
      if (state.ended) await remove(deviceId, epoch);
      return;
    }
    const newer = claims.get(deviceId);
    if (newer && newer.epoch > epoch) {
      local().supersede(session, `replaced by a newer connection of the same device on node ${newer.node}`);
      return;
    }
    cluster.publish(subjects.claim, { deviceId, node: me, epoch } satisfies Claim);
    try {
      onEpoch?.(deviceId, epoch);
    } catch (err) {
      logger.error({ deviceId, err }, 'session epoch listener failed');
    }
  }

  /** A session held by another node: its send() is a request to that node. */
  function remote(deviceId: string, entry: Entry): DeviceSession {
    return {
      deviceId,
      projectId: entry.projectId,
      transport: entry.transport,
      async send(topic, payload) {
        let answer: SendAnswer;
        try {
          answer = await cluster.request<SendAnswer>(subjects.send(entry.node), {
            deviceId,
            topic,
            payload: payload.toString('base64'),
          } satisfies SendRequest);
        } catch (err) {
          throw err instanceof ClusterUnavailable ? unavailable(err) : err;
        }
        if (!answer.ok) throw new Error(answer.error);
      },
      close(reason) {
        cluster.publish(subjects.kick, { node: me, deviceId, reason });
      },
    };
  }

  const respond = (msg: Msg, answer: SendAnswer): void => {
    msg.respond(encodeJson(answer));
  };

  const unsubscribe = [
    // Another node sends to a session of this node.
    cluster.subscribe(subjects.send(me), async (msg) => {
      let body: Partial<SendRequest>;
      try {
        body = decodeJson<Partial<SendRequest>>(msg.data);
      } catch {
        return respond(msg, { ok: false, error: 'invalid send request' });
      }
      if (typeof body.deviceId !== 'string' || typeof body.topic !== 'string' || typeof body.payload !== 'string') {
        return respond(msg, { ok: false, error: 'invalid send request' });
      }
      const session = local().get(body.deviceId);
      if (!session) {
        // The directory still names this node (its delete was lost): the entry goes, so others stop asking.
        void track(forgetStale(body.deviceId));
        return respond(msg, { ok: false, error: 'the device disconnected' });
      }
      try {
        await session.send(body.topic, Buffer.from(body.payload, 'base64'));
        respond(msg, { ok: true });
      } catch (err) {
        respond(msg, { ok: false, error: (err as Error)?.message || String(err) });
      }
    }),
    // The bucket of a device whose older session another node closed for this node's newer one.
    ...(buckets
      ? [
          cluster.subscribe(subjects.bucket(me), (msg) => {
            const body = decodeJson<{ deviceId?: unknown; state?: unknown }>(msg.data);
            if (typeof body.deviceId !== 'string') return;
            const session = local().get(body.deviceId);
            if (session) buckets.adopt(session, body.state);
          }),
        ]
      : []),
    cluster.subscribe(subjects.claim, (msg) => {
      const claim = decodeJson<Partial<Claim>>(msg.data);
      if (typeof claim.deviceId !== 'string' || typeof claim.node !== 'string' || typeof claim.epoch !== 'number')
        return;
      if (claim.node === me) return;
      const now = Date.now();
      forgetOldClaims(now);
      const known = claims.get(claim.deviceId);
      if (!known || known.epoch < claim.epoch) {
        // Re-inserted: the map stays in arrival order, oldest first.
        claims.delete(claim.deviceId);
        claims.set(claim.deviceId, { deviceId: claim.deviceId, node: claim.node, epoch: claim.epoch, at: now });
      }
      applyClaim(claim as Claim);
    }),
    cluster.subscribe(subjects.kick, (msg) => {
      const body = decodeJson<{ node?: string; deviceId?: unknown; projectId?: unknown; reason?: unknown }>(msg.data);
      if (body.node === me) return;
      const reason = typeof body.reason === 'string' ? body.reason : 'kicked';
      if (typeof body.deviceId === 'string') local().kickLocal(body.deviceId, reason);
      if (typeof body.projectId === 'string') local().kickProjectLocal(body.projectId, reason);
    }),
  ];

  // NATS back after an outage: this node's sessions are recorded again (the bucket may have lost them, or
  // another node took a device meanwhile: then that newer login wins here too).
  /** Closes the sessions of devices revoked, disabled or changed while this node was cut off from NATS. */
  async function recheck(since: number) {
    if (!changedSince) return;
    const byProject = new Map<string, string[]>();
    for (const s of local().local()) {
      const ids = byProject.get(s.projectId) ?? [];
      ids.push(s.deviceId);
      byProject.set(s.projectId, ids);
    }
    for (const [projectId, ids] of byProject) {
      for (let i = 0; i < ids.length; i += 1_000) {
        const changed = await changedSince(projectId, ids.slice(i, i + 1_000), since - 1_000);
        for (const id of changed) local().kickLocal(id, 'changed while the cluster was unreachable');
      }
    }
  }

  const rechecking = (since: number) =>
    recheck(since).catch((err: unknown) => logger.warn({ err }, 'sessions not checked after the NATS outage'));
  // The others check theirs too: what changed through this node while it was cut off (a token reset on its API)
  // sent kicks that never left it.
  const offRecheck = cluster.subscribe(subjects.recheck, (msg) => {
    const body = decodeJson<{ node?: unknown; since?: unknown }>(msg.data);
    if (body.node === me || typeof body.since !== 'number' || !Number.isFinite(body.since)) return;
    // Never further back than a day: an old `since` would only cost queries.
    void rechecking(Math.max(body.since, Date.now() - DAY_MS));
  });
  const offReconnect = cluster.onReconnect(({ since }) => {
    void rechecking(since);
    cluster.publish(subjects.recheck, { node: me, since });
    for (const session of [...local().local()]) {
      const state = recorded.get(session) ?? {};
      recorded.set(session, state);
      void track(
        record(session, state, async (b) => {
          const current = await b.get(session.deviceId);
          if (current && current.operation === 'PUT') {
            const entry = decodeJson<Partial<Entry>>(current.value);
            if (entry.node === me) return b.update(session.deviceId, encodeJson(entryOf(session)), current.revision);
            if (typeof entry.node === 'string' && cluster.isAlive(entry.node)) {
              // A newer login holds the device on that node.
              local().supersede(session, `replaced by a newer connection of the same device on node ${entry.node}`);
              throw new Error(`the device is held by node ${entry.node}`);
            }
          }
          return b.put(session.deviceId, encodeJson(entryOf(session)));
        }),
      );
    }
  });

  return {
    attached(session) {
      const state: Recorded = {};
      recorded.set(session, state);
      void track(record(session, state, (b) => b.put(session.deviceId, encodeJson(entryOf(session)))));
    },
    detached(session) {
      const state = recorded.get(session);
      if (!state) return;
      state.ended = true;
      if (state.epoch !== undefined) void track(remove(session.deviceId, state.epoch));
    },
    async find(deviceId) {
      // Not a key the bucket can hold, so not a device any node recorded.
      if (!KEY.test(deviceId)) return undefined;
      if (cluster.status !== 'connected') {
        throw unavailable(new ClusterUnavailable('the cluster is unreachable (NATS is down)'));
      }
      let value: Entry;
      try {
        const entry = await (await bucket()).get(deviceId);
        if (!entry || entry.operation !== 'PUT') return undefined;
        value = decodeJson<Entry>(entry.value);
      } catch (err) {
        throw unavailable(
          err instanceof ClusterUnavailable
            ? err
            : new ClusterUnavailable(`the session directory is unreachable (${(err as Error).message})`),
        );
      }
      // This node's own entry without a session here is stale; so is a dead node's.
      if (typeof value.node !== 'string' || value.node === me || !cluster.isAlive(value.node)) return undefined;
      if (typeof value.projectId !== 'string' || !TRANSPORTS.has(value.transport)) return undefined;
      return remote(deviceId, value);
    },
    kick(deviceId, reason) {
      cluster.publish(subjects.kick, { node: me, deviceId, reason });
    },
    kickProject(projectId, reason) {
      cluster.publish(subjects.kick, { node: me, projectId, reason });
    },
    epochOf: (session) => recorded.get(session)?.epoch,
    async lastEpoch() {
      return (await (await bucket()).status()).streamInfo.state.last_seq;
    },
    async settled() {
      while (pending.size) await Promise.allSettled([...pending]);
    },
    stop() {
      offReconnect();
      offRecheck();
      for (const u of unsubscribe) u();
    },
  };
}

/**
 * Synchronous command callers across nodes (docs/cluster.md): a device's reply is stored by the node holding
 * its session, while the caller of `command/sync/send` may wait on another; the storing node announces the
 * command id and every node wakes its waiters of it (who then read the stored state).
 */
export function linkCommandReplies(cluster: Cluster, wake: (commandId: string) => void) {
  const subject = cluster.subject('commands', 'replied');
  const stop = cluster.subscribe(subject, (msg) => {
    const body = decodeJson<{ commandId?: unknown; node?: unknown }>(msg.data);
    if (body.node !== cluster.nodeId && typeof body.commandId === 'string') wake(body.commandId);
  });
  return {
    announce: (commandId: string) => void cluster.publish(subject, { commandId, node: cluster.nodeId }),
    stop,
  };
}
