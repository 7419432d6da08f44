import { readFileSync } from 'node:fs';
import { addressKey } from '../../src/lib/address.ts';
import { createTokenBuckets } from '../../src/lib/token-buckets.ts';

/**
 * Admission of device connections (MQTT, MQTT over WebSocket, raw TCP), shared by every listener of
 * the process: nobody's connections can crowd out anybody else's.
 *
 * - A connection is *pending* until its device (or viewer) has logged in. Pending connections are
 *   bounded per client address and for the whole process; past either bound the oldest pending
 *   connection of that address (for the global bound: of the address holding the most) is closed to
 *   make room. A logged-in connection is never closed to make room.
 * - All device connections together stay below the process's file-descriptor limit, so HTTP, the
 *   database and log files keep working; a new connection beyond it is closed at once, after the
 *   pending ones have been closed to make room.
 * - Login attempts are counted per client address (a token bucket) before any database query or
 *   hash is spent on them.
 *
 * IPv6 clients are grouped by their /64 network (one host gets a whole /64), IPv4-mapped IPv6
 * addresses count as the IPv4 address.
 */
export const ADMISSION_DEFAULTS = {
  /** Connections not logged in yet, per client address. */
  pendingPerAddress: 64,
  /** Connections not logged in yet, all addresses together. */
  pendingMax: 4096,
  /** Login attempts per second per client address, and the burst (a NAT'd plant reconnecting at once). */
  loginRate: 50,
  loginBurst: 500,
} as const;

export interface AdmissionOptions {
  pendingPerAddress?: number;
  pendingMax?: number;
  /** Device connections open at once, logged in or not; 0 or unset = derived from the open-file limit. */
  maxConnections?: number;
  loginRate?: number;
  loginBurst?: number;
  clock?: () => number;
}

/** One accepted connection, from `open` until `closed`. */
export interface Ticket {
  /** The address key the connection is counted under. */
  readonly address: string;
  /** Whether the connection has logged in (it is no longer pending). */
  readonly admitted: boolean;
  /** The connection logged in: it no longer counts as pending and is never closed to make room. */
  admit(): void;
  /** The connection closed (any reason; calling it twice is harmless). */
  closed(): void;
  /**
   * Calls `expire` (or destroys the stream given) in `ms` unless the connection has logged in or closed by then.
   * The timer is cleared at the login: a connection holds no timer of this for the rest of its life.
   */
  expireAfter(ms: number, expire: Stop): void;
}

/**
 * How a connection is ended: a function, or the stream itself to destroy. Passing the stream where nothing else
 * is to be done spares a closure (and its context) for each connection of a storm.
 */
export type Stop = (() => void) | { destroy(): void };

function stop(how: Stop): void {
  if (typeof how === 'function') how();
  else how.destroy();
}

export interface AdmissionStats {
  /** Device connections open, logged in or not. */
  open: number;
  pending: number;
  /** Pending connections closed to make room for newer ones. */
  evicted: number;
  /** Connections closed at once because every slot was held by logged-in connections. */
  refused: number;
  /** Login attempts refused by the per-address rate. */
  loginsLimited: number;
}

export interface Admission {
  /**
   * Counts a new connection from `remoteAddress`; `evict` closes it when it has to make room while
   * still pending. Undefined: the connection must be closed at once (no slot left).
   */
  open(remoteAddress: string | undefined, evict: Stop): Ticket | undefined;
  /** Takes one login attempt of the address's budget; false when it is used up. */
  tryLogin(address: string): boolean;
  readonly maxConnections: number;
  stats(): AdmissionStats;
}

/** The soft open-file limit of this process (Node raises it to the hard limit at start), when known. */
export function openFileLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    const n = Number(soft);
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Device connections allowed with an open-file limit of `limit`: a quarter of the descriptors, at
 * most 1024, stay for HTTP, the database, files and the process itself. Unknown limit: 16384.
 */
export function connectionsForFileLimit(limit: number | undefined): number {
  if (limit === undefined) return 16_384;
  return Math.max(16, limit - Math.min(1024, Math.floor(limit / 4)));
}

// Defined in src/lib/address.ts (the HTTP limits count clients the same way); re-exported for the broker.
export { addressKey };

/**
 * One connection's entry, and its ticket: a class, so `admit` and `closed` live on the prototype. As
 * closures they were two functions per connection, each with a property table of its own under tsx (whose
 * `keepNames` defines every named function's `name`), and the ticket's getter made the object a dictionary:
 * about 0.8 KiB of heap per connection in bench:mqtt-connect.
 */
class Entry implements Ticket {
  pending = true;
  open = true;
  deadline: ReturnType<typeof setTimeout> | undefined = undefined;

  constructor(
    private readonly owner: { unpend(e: Entry): void; release(e: Entry): void },
    readonly address: string,
    readonly evict: Stop,
  ) {}

  get admitted(): boolean {
    return this.open && !this.pending;
  }

  admit(): void {
    this.stopDeadline();
    this.owner.unpend(this);
  }

  closed(): void {
    this.stopDeadline();
    this.owner.release(this);
  }

  expireAfter(ms: number, expire: Stop): void {
    this.stopDeadline();
    this.deadline = setTimeout(() => {
      if (!this.admitted) stop(expire);
    }, ms);
    this.deadline.unref();
  }

  private stopDeadline(): void {
    if (this.deadline === undefined) return;
    clearTimeout(this.deadline);
    this.deadline = undefined;
  }
}

/** Buckets kept before the full (idle) ones are forgotten (src/lib/token-buckets.ts). */
const MAX_BUCKETS = 100_000;

export function createAdmission(options: AdmissionOptions = {}): Admission {
  const { clock = Date.now } = options;
  const pendingPerAddress = options.pendingPerAddress ?? ADMISSION_DEFAULTS.pendingPerAddress;
  const pendingMax = options.pendingMax ?? ADMISSION_DEFAULTS.pendingMax;
  const loginRate = options.loginRate ?? ADMISSION_DEFAULTS.loginRate;
  const loginBurst = options.loginBurst ?? ADMISSION_DEFAULTS.loginBurst;
  const maxConnections = options.maxConnections || connectionsForFileLimit(openFileLimit());
  /** Pending connections by address, oldest first (a Set keeps insertion order). */
  const pendingBy = new Map<string, Set<Entry>>();
  const logins = createTokenBuckets({ rate: loginRate, burst: loginBurst, maxKeys: MAX_BUCKETS, clock });
  let open = 0;
  let pending = 0;
  const counts = { evicted: 0, refused: 0, loginsLimited: 0 };

  function unpend(e: Entry) {
    if (!e.pending) return;
    e.pending = false;
    pending -= 1;
    const set = pendingBy.get(e.address)!;
    set.delete(e);
    if (set.size === 0) pendingBy.delete(e.address);
  }

  function release(e: Entry) {
    unpend(e);
    if (!e.open) return;
    e.open = false;
    open -= 1;
  }
  const owner = { unpend, release };

  /** Closes the oldest pending connection of `address`; its slots are free at once. */
  function evictOldest(address: string) {
    const set = pendingBy.get(address);
    const oldest = set?.values().next().value;
    if (!oldest) return;
    release(oldest);
    counts.evicted += 1;
    stop(oldest.evict);
  }

  /** The address holding the most pending connections. */
  function biggestHolder(): string | undefined {
    let best: string | undefined;
    let size = 0;
    for (const [address, set] of pendingBy) {
      if (set.size > size) {
        best = address;
        size = set.size;
      }
    }
    return best;
  }

  return {
    maxConnections,

    open(remoteAddress, evict) {
      const address = addressKey(remoteAddress);
      if (open >= maxConnections) {
        const holder = biggestHolder();
        if (holder === undefined) {
          counts.refused += 1;
          return undefined;
        }
        evictOldest(holder);
      }
      if ((pendingBy.get(address)?.size ?? 0) >= pendingPerAddress) evictOldest(address);
      if (pending >= pendingMax) {
        const holder = biggestHolder();
        if (holder !== undefined) evictOldest(holder);
      }
      const e = new Entry(owner, address, evict);
      let set = pendingBy.get(address);
      if (!set) pendingBy.set(address, (set = new Set()));
      set.add(e);
      pending += 1;
      open += 1;
      return e;
    },

    tryLogin(address) {
      if (logins.take(address).ok) return true;
      counts.loginsLimited += 1;
      return false;
    },

    stats: () => ({ open, pending, ...counts }),
  };
}

/** What `track` needs of a connection: a socket or a WebSocket stream (each emits 'close' once). */
export interface TrackedStream {
  destroy(): void;
  on(event: 'close', listener: () => void): unknown;
}

export interface TrackOptions {
  /** The client's address (by default unknown). */
  address: string | undefined;
  /**
   * The connection must have logged in (`ticket.admit()`) within this time of its opening, or it is closed
   * (`expire`). Omitted: the transport times the login itself (raw TCP: its link's one timer).
   */
  deadlineMs?: number;
  /** Closes the connection when it has to make room while still pending (default: destroys the stream). */
  evict?: () => void;
  /** Closes the connection still pending at the deadline (default: destroys the stream). */
  expire?: () => void;
  /**
   * The connection is closed to make room, or at once for want of any room (raw TCP counts these and logs
   * a warning; the MQTT broker is silent).
   */
  busy?: () => void;
  /**
   * The stream closed (after the ticket was released): the transport's own bookkeeping. Given the stream,
   * so one function serves every connection (a closure per connection costs heap, see `Entry`).
   */
  onClose?: (stream: TrackedStream) => void;
}

/**
 * Admits one new device connection of any listener: counted as pending for its address until it logs in,
 * closed to make room (`evict`) or when still pending at the deadline (`expire`), released when the stream
 * closes. Undefined: no room at all, the stream was destroyed.
 *
 * On every connection of a storm: one close listener and as few closures as the inline code it replaced
 * (a version with two listeners, default closures and a property added to the ticket cost 1.3 KiB of heap
 * per connection in bench:mqtt-connect). The listener is added with `on`, not `once`: the stream emits 'close'
 * once, and `once` wraps each listener in a bound function with a state object of its own (~150 bytes).
 */
export function track(admission: Admission, stream: TrackedStream, options: TrackOptions): Ticket | undefined {
  const { busy, evict, expire, onClose, deadlineMs } = options;
  // The stream itself when there is nothing else to do: no closure per connection.
  const ticket = admission.open(
    options.address,
    busy || evict
      ? () => {
          busy?.();
          stop(evict ?? stream);
        }
      : stream,
  );
  if (!ticket) {
    busy?.();
    stream.destroy();
    return undefined;
  }
  if (deadlineMs !== undefined) ticket.expireAfter(deadlineMs, expire ?? stream);
  stream.on('close', () => {
    ticket.closed();
    onClose?.(stream);
  });
  return ticket;
}
