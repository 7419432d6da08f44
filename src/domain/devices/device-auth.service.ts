import type { CredentialRow, DeviceAuthRepository } from '../../db/repositories/device-auth.repository.ts';
import type { EventBus } from '../events/event-bus.ts';
import { Interner } from '../../lib/intern.ts';
import type { DeviceIdentity } from './device-identity.ts';

export interface DeviceAuthDeps {
  repo: DeviceAuthRepository;
  bus: EventBus;
  clock?: () => number;
  /** How long a successful look-up is reused (revocations invalidate at once). */
  ttlMs?: number;
  /** How long an unknown credential is remembered, so a storm of bad logins costs no queries. */
  negativeTtlMs?: number;
  maxEntries?: number;
  /** Most tokens one statement looks up (the rest go out in the next). */
  maxBatch?: number;
  /**
   * In a storm (the batch that just came back held more than one login), how long the next batch waits for more
   * look-ups before it goes out; it goes at once when `maxBatch` are waiting. A login on a quiet server is not
   * delayed; one that comes within this time of a batch of several may wait up to it.
   */
  gatherMs?: number;
}

const MAX_CREDENTIAL_LENGTH = 256;
/** Issued credentials are printable ASCII: anything else (a NUL, control or non-ASCII text) cannot match and never reaches the database. */
const CREDENTIAL = /^[\x21-\x7e]+$/;

/** A look-up waiting for its batch: the key it was asked with, answered with the identity or undefined. */
interface Waiting {
  projectKey: string;
  resolve(identity: DeviceIdentity | undefined): void;
  reject(err: unknown): void;
}

/**
 * One copy of each project's id for the identities of its devices (src/lib/intern.ts): each row of a login brings
 * its own, and a connected device keeps its identity. Bounded (10,000 projects; a full table starts over).
 */
const projectIds = new Interner(10_000, 64);

const identityOf = (row: CredentialRow): DeviceIdentity => ({
  deviceId: row.deviceId,
  projectId: projectIds.intern(row.projectId),
  name: row.name,
  typeId: row.typeId,
  connType: row.connType ?? '1',
  disabled: row.disabled,
});

/**
 * Authenticates devices by access token + project key (device-protocol.md §1–2) for MQTT, TCP and
 * HTTP alike. Look-ups are cached, and concurrent look-ups of the same credential share one query.
 * Those not cached are batched: the look-ups asked for in one turn of the event loop, or while the previous
 * batch is out, go out in one statement (architecture.md §9), so a reconnect storm of thousands of devices
 * costs a statement per batch, not a query per device. Revocations drop cached logins at once (see the events below).
 */
export function createDeviceAuthService({
  repo,
  bus,
  clock = Date.now,
  ttlMs = 60_000,
  negativeTtlMs = 5_000,
  maxEntries = 200_000,
  maxBatch = 500,
  gatherMs = 0,
}: DeviceAuthDeps) {
  /**
   * `identity` while the look-up is out; once it found the device, `found` instead (a settled promise kept for
   * each cached device cost ~50 bytes of heap; a hit makes a new one).
   */
  const cache = new Map<
    string,
    {
      identity: Promise<DeviceIdentity | undefined> | undefined;
      found: DeviceIdentity | undefined;
      until: number;
      generation: number;
    }
  >();
  /**
   * A look-up in flight while its device is revoked must not be cached: entries and revocations
   * are numbered, and an entry older than its device's last revocation is dropped when it resolves.
   */
  let generation = 0;
  const revokedAt = new Map<string, number>();
  /**
   * Cache keys of each known device, so a revocation drops its entries without scanning the cache: the key
   * itself while a device has one (nearly always), a set once it has more (a Set per device cost ~0.1 KiB of heap).
   */
  const keysOf = new Map<string, string | Set<string>>();
  const keysOfDevice = (deviceId: string): Iterable<string> => {
    const keys = keysOf.get(deviceId);
    return keys === undefined ? [] : typeof keys === 'string' ? [keys] : keys;
  };
  /** Devices of each project with cached logins, and the generation at which a project was deleted. */
  const devicesOf = new Map<string, Set<string>>();
  const projectRevokedAt = new Map<string, number>();
  /**
   * Devices and projects whose cached logins went stale without a revocation (a rename, a device type's
   * `conn_type`): their entries are dropped and looked up again, but logins in flight are not refused.
   */
  const staleAt = new Map<string, number>();
  // join makes one flat string; a template literal makes two concatenation nodes that keep their parts (a copy of the
  // project key per device): ~30 bytes more for every cached login.
  const keyOf = (projectKey: string, token: string) => [projectKey, token].join('\u0001');

  function revoke(deviceId: string) {
    for (const key of keysOfDevice(deviceId)) cache.delete(key);
    keysOf.delete(deviceId);
    if (revokedAt.size >= maxEntries) revokedAt.clear();
    revokedAt.set(deviceId, ++generation);
  }
  bus.on('device.credentials_revoked', ({ deviceId }) => revoke(deviceId));
  const drop = (deviceId: string) => {
    for (const key of keysOfDevice(deviceId)) cache.delete(key);
    keysOf.delete(deviceId);
  };
  const markStale = (id: string) => {
    if (staleAt.size >= maxEntries) staleAt.clear();
    staleAt.set(id, ++generation);
  };
  // A renamed device, or a changed device type of its project, is read again at the next login (on every
  // node: these events are heard from the others too, docs/cluster.md §4).
  bus.on('device.updated', ({ deviceId }) => {
    drop(deviceId);
    markStale(deviceId);
  });
  bus.on('device_type.changed', ({ projectId }) => {
    for (const deviceId of devicesOf.get(projectId) ?? []) drop(deviceId);
    devicesOf.delete(projectId);
    markStale(projectId);
  });
  // A deleted project's logins are never answered from the cache again, those in flight included.
  bus.on('project.deleted', ({ projectId }) => {
    for (const deviceId of devicesOf.get(projectId) ?? []) revoke(deviceId);
    devicesOf.delete(projectId);
    if (projectRevokedAt.size >= maxEntries) projectRevokedAt.clear();
    projectRevokedAt.set(projectId, ++generation);
  });

  /**
   * Tokens to look up in the next batch, each with the look-ups waiting for it. One batch is in flight at a
   * time: the look-ups asked for meanwhile go out together when it returns, so the busier the storm, the
   * larger the batches (a login on a quiet server goes out at the next turn of the event loop). In a storm the
   * next batch also waits up to `gatherMs` to fill (docs/architecture.md §9): against a fast database, batches
   * would otherwise hold a few logins each, and each statement costs this process and the database about as
   * much as several logins' rows.
   */
  let waiting = new Map<string, Waiting[]>();
  let scheduled = false;
  let gathering: ReturnType<typeof setTimeout> | undefined;
  let inFlight = false;

  function sendBatch() {
    scheduled = false;
    if (gathering) clearTimeout(gathering);
    gathering = undefined;
    if (inFlight || !waiting.size) return;
    const batch = waiting;
    let tokens = [...batch.keys()];
    waiting = new Map();
    if (tokens.length > maxBatch) {
      for (const token of tokens.slice(maxBatch)) waiting.set(token, batch.get(token)!);
      tokens = tokens.slice(0, maxBatch);
    }
    inFlight = true;
    repo
      .byTokens(tokens)
      .then(
        (rows) => {
          const found = new Map(rows.map((row) => [row.accessToken, row]));
          for (const token of tokens) {
            const row = found.get(token);
            for (const w of batch.get(token)!)
              w.resolve(row && row.projectKey === w.projectKey ? identityOf(row) : undefined);
          }
        },
        (err: unknown) => {
          for (const token of tokens) for (const w of batch.get(token)!) w.reject(err);
        },
      )
      .finally(() => {
        inFlight = false;
        if (gatherMs > 0 && tokens.length > 1 && waiting.size < maxBatch) {
          scheduled = true;
          gathering = setTimeout(sendBatch, gatherMs);
          gathering.unref();
        } else sendBatch();
      });
  }

  /** Looks a token up with the others asked for in this turn of the event loop (or while a batch is out). */
  function lookUp(projectKey: string, token: string): Promise<DeviceIdentity | undefined> {
    if (!scheduled && !inFlight) {
      scheduled = true;
      setImmediate(sendBatch);
    }
    return new Promise((resolve, reject) => {
      const list = waiting.get(token);
      if (list) list.push({ projectKey, resolve, reject });
      else waiting.set(token, [{ projectKey, resolve, reject }]);
      // A full batch need not wait for the rest of its gathering time.
      if (gathering && waiting.size >= maxBatch) sendBatch();
    });
  }

  function remember(key: string, identity: DeviceIdentity) {
    const keys = keysOf.get(identity.deviceId);
    if (keys === undefined || keys === key) keysOf.set(identity.deviceId, key);
    else if (typeof keys === 'string') keysOf.set(identity.deviceId, new Set([keys, key]));
    else keys.add(key);
    let devices = devicesOf.get(identity.projectId);
    if (!devices) devicesOf.set(identity.projectId, (devices = new Set()));
    devices.add(identity.deviceId);
  }

  return {
    /**
     * A mark taken before a login is checked; `revokedSince(identity, mark)` then tells whether the
     * device or its project was revoked meanwhile, so a transport does not attach a session for a login
     * that a revocation overtook (the revocation found nothing to close).
     */
    mark: () => generation,
    revokedSince: (identity: Pick<DeviceIdentity, 'deviceId' | 'projectId'>, mark: number) =>
      Math.max(revokedAt.get(identity.deviceId) ?? 0, projectRevokedAt.get(identity.projectId) ?? 0) > mark,

    authenticate(projectKey: string, accessToken: string): Promise<DeviceIdentity | undefined> {
      if (
        projectKey.length > MAX_CREDENTIAL_LENGTH ||
        accessToken.length > MAX_CREDENTIAL_LENGTH ||
        !CREDENTIAL.test(projectKey) ||
        !CREDENTIAL.test(accessToken)
      ) {
        return Promise.resolve(undefined);
      }
      const key = keyOf(projectKey, accessToken);
      const now = clock();
      const hit = cache.get(key);
      if (hit && hit.until > now) return hit.identity ?? Promise.resolve(hit.found);
      if (cache.size >= maxEntries) {
        cache.clear();
        keysOf.clear();
        devicesOf.clear();
      }
      const identity = lookUp(projectKey, accessToken);
      const entry = {
        identity: identity as typeof identity | undefined,
        found: undefined as DeviceIdentity | undefined,
        until: now + negativeTtlMs,
        generation: ++generation,
      };
      cache.set(key, entry);
      identity.then(
        (id) => {
          if (!id || cache.get(key) !== entry) return;
          if (
            Math.max(
              revokedAt.get(id.deviceId) ?? 0,
              projectRevokedAt.get(id.projectId) ?? 0,
              staleAt.get(id.deviceId) ?? 0,
              staleAt.get(id.projectId) ?? 0,
            ) > entry.generation
          )
            cache.delete(key);
          else {
            entry.until = clock() + ttlMs;
            entry.found = id;
            entry.identity = undefined;
            remember(key, id);
          }
        },
        () => {
          if (cache.get(key) === entry) cache.delete(key);
        },
      );
      return identity;
    },
  };
}
export type DeviceAuthService = ReturnType<typeof createDeviceAuthService>;
