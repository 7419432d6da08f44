import type { ServerResponse } from 'node:http';
import type { FastifyBaseLogger } from 'fastify';
import { addressKey } from '../../../lib/address.ts';
import type { AuthService } from '../../../domain/auth/auth.service.ts';
import type { Principal } from '../../../domain/auth/principal.ts';
import type { EventBus } from '../../../domain/events/event-bus.ts';
import type { LiveMessage, Watch } from '../../../domain/events/live-events.ts';
import { TooManyRequests } from '../../../errors.ts';

/** Limits of live event streams (README "The limits"; config.ts `EVENTS_*`). */
export interface EventStreamLimits {
  perProject: number;
  perAddress: number;
  /** Streams one principal (an app, admin or customer, whatever its tokens) may hold open at once. */
  perPrincipal: number;
  /** Bytes written but not yet taken by the reader; more and the stream ends with `event: overflow`. */
  queueBytes: number;
  keepaliveMs: number;
}

export const EVENT_STREAM_DEFAULTS: EventStreamLimits = {
  perProject: 200,
  perAddress: 20,
  perPrincipal: 10,
  queueBytes: 1024 * 1024,
  keepaliveMs: 15_000,
};

/** How long a stream that has ended may take to hand its last bytes to the reader before its socket is cut. */
const FINAL_FLUSH_MS = 5_000;
/** The same while the server stops: it must not wait for readers that do not read. */
const SHUTDOWN_FLUSH_MS = 1_000;
/** Retry-After of a refused stream: streams free up when others close. */
const RETRY_AFTER_S = 5;

const stopping = () => new TooManyRequests('The server is stopping; open the stream again', 1);

export type EndReason = 'expired' | 'revoked' | 'shutdown' | 'overflow';

/** One open stream: `GET /api/v1/events` after its answer's head was sent. */
export interface EventStream {
  readonly principal: Principal;
  /** Ends the stream with a last `event: end` (`event: overflow` for an overflow) naming why. */
  end(reason: EndReason): void;
}

interface Slot {
  projectId: string;
  address: string;
  principal: string;
  release(): void;
}

export interface EventStreamsDeps {
  bus: Pick<EventBus, 'on'>;
  auth: Pick<AuthService, 'tokenValid'>;
  limits: EventStreamLimits;
  log: FastifyBaseLogger;
}

/**
 * The open event streams of one HTTP application (http-api.md §4.14): their counts per project and per
 * client address, and what ends them from outside — a deleted project, a revoked principal
 * (`principal.revoked`: its token is checked again), the server stopping. Every stream also checks its
 * token on each keepalive, so a revocation this node was not told about ends it within the cache time
 * of auth.service.ts plus one keepalive.
 */
export function createEventStreams({ bus, auth, limits, log }: EventStreamsDeps) {
  const byProject = new Map<string, Set<EventStream>>();
  const byPrincipal = new Map<string, Set<EventStream>>();
  const perProject = new Map<string, number>();
  const perAddress = new Map<string, number>();
  const perPrincipal = new Map<string, number>();
  const principalKey = (p: Pick<Principal, 'kind' | 'subjectId'>) => `${p.kind}:${p.subjectId}`;
  const issuedAt = new WeakMap<EventStream, number>();
  let closing = false;

  const inc = (m: Map<string, number>, k: string, d: number) => {
    const n = (m.get(k) ?? 0) + d;
    if (n > 0) m.set(k, n);
    else m.delete(k);
  };
  const add = <T>(m: Map<string, Set<T>>, k: string, v: T) => {
    let set = m.get(k);
    if (!set) m.set(k, (set = new Set()));
    set.add(v);
  };
  const remove = <T>(m: Map<string, Set<T>>, k: string, v: T) => {
    const set = m.get(k);
    if (set?.delete(v) && !set.size) m.delete(k);
  };

  async function recheck(stream: EventStream) {
    try {
      if (!(await auth.tokenValid(stream.principal, issuedAt.get(stream) ?? 0))) stream.end('revoked');
    } catch (err) {
      // The database is away: the stream keeps going, the next keepalive asks again.
      log.warn({ err }, 'event stream token not checked');
    }
  }

  const offBus = [
    bus.on('project.deleted', ({ projectId }) => {
      for (const s of [...(byProject.get(projectId) ?? [])]) s.end('revoked');
    }),
    bus.on('principal.revoked', (p) => {
      for (const s of [...(byPrincipal.get(principalKey(p)) ?? [])]) void recheck(s);
    }),
  ];

  return {
    /**
     * Takes a place for a new stream of the principal's project from this address, or throws 429. Taken
     * before the stream's look-ups, so streams opened at once cannot all pass the count. The count per
     * principal keeps one app or customer from using up its project's allowance.
     */
    reserve(principal: Principal, remoteAddress: string | undefined): Slot {
      if (closing) throw stopping();
      const { projectId } = principal;
      const address = addressKey(remoteAddress);
      const pKey = principalKey(principal);
      if ((perProject.get(projectId) ?? 0) >= limits.perProject) {
        throw new TooManyRequests(
          `Too many event streams open for this project (at most ${limits.perProject})`,
          RETRY_AFTER_S,
        );
      }
      if ((perAddress.get(address) ?? 0) >= limits.perAddress) {
        throw new TooManyRequests(
          `Too many event streams open from this address (at most ${limits.perAddress})`,
          RETRY_AFTER_S,
        );
      }
      if ((perPrincipal.get(pKey) ?? 0) >= limits.perPrincipal) {
        throw new TooManyRequests(
          `Too many event streams open for this token's ${principal.kind} (at most ${limits.perPrincipal})`,
          RETRY_AFTER_S,
        );
      }
      inc(perProject, projectId, 1);
      inc(perAddress, address, 1);
      inc(perPrincipal, pKey, 1);
      let released = false;
      return {
        projectId,
        address,
        principal: pKey,
        release() {
          if (released) return;
          released = true;
          inc(perProject, projectId, -1);
          inc(perAddress, address, -1);
          inc(perPrincipal, pKey, -1);
        },
      };
    },

    /**
     * Starts the stream on `res` (the reply is the route's no longer): writes the head and a first
     * comment, then every message `watch` delivers through `send`, a `: ping` comment every keepalive,
     * and ends it when the token expires (`expiresAt`, ms), is revoked, the reader falls too far
     * behind, or the reader goes away. Returns the function the watch's listener calls.
     *
     * Throws 429 without touching `res` (closing the watch, freeing the slot) when the server began to
     * stop during the route's look-ups: `closeAll` has run, so nothing would end this stream, and the
     * server's close would wait for it until the token expires.
     */
    open(opts: {
      res: ServerResponse;
      headers: Record<string, string | number | string[] | undefined>;
      principal: Principal;
      tokenIssuedAt: number;
      expiresAt: number;
      slot: Slot;
      watch: Watch;
    }): { send(m: LiveMessage): void; stream: EventStream } {
      const { res, principal, slot, watch } = opts;
      if (closing) {
        watch.close();
        slot.release();
        throw stopping();
      }
      let seq = 0;
      let ended = false;
      const pKey = principalKey(principal);

      const cleanup = () => {
        clearInterval(keepalive);
        clearTimeout(expiry);
        watch.close();
        slot.release();
        remove(byProject, principal.projectId, stream);
        remove(byPrincipal, pKey, stream);
      };
      const write = (frame: string) => {
        if (ended) return;
        res.write(frame);
        // What the reader has not taken yet (Node's buffer of the response and of its socket).
        if (res.writableLength > limits.queueBytes) stream.end('overflow');
      };
      const stream: EventStream = {
        principal,
        end(reason) {
          if (ended) return;
          ended = true;
          cleanup();
          const event = reason === 'overflow' ? 'overflow' : 'end';
          res.end(`event: ${event}\ndata: ${JSON.stringify({ reason })}\n\n`);
          // A reader that does not read would hold the socket (and what waits in it) for ever.
          const cut = setTimeout(() => res.destroy(), reason === 'shutdown' ? SHUTDOWN_FLUSH_MS : FINAL_FLUSH_MS);
          cut.unref();
          res.once('close', () => clearTimeout(cut));
        },
      };

      res.on('close', () => {
        if (ended) return;
        ended = true;
        cleanup();
      });
      const keepalive = setInterval(() => {
        write(': ping\n\n');
        if (!ended) void recheck(stream);
      }, limits.keepaliveMs);
      // setTimeout holds at most 2^31-1 ms (24.8 days); tokens live 7 days at most (http-api.md §2).
      const expiry = setTimeout(
        () => stream.end('expired'),
        Math.min(Math.max(0, opts.expiresAt - Date.now()), 2 ** 31 - 1),
      );
      issuedAt.set(stream, opts.tokenIssuedAt);
      add(byProject, principal.projectId, stream);
      add(byPrincipal, pKey, stream);

      res.writeHead(200, {
        ...opts.headers,
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        // nginx and others: pass each message on at once.
        'x-accel-buffering': 'no',
        // The socket closes with the stream: nothing waits on it for a next request, the address's count drops.
        connection: 'close',
      });
      res.write(': connected\n\n');
      return { stream, send: (m) => write(`id: ${++seq}\nevent: ${m.kind}\ndata: ${m.json}\n\n`) };
    },

    /** Open streams, of one project or all (for tests and metrics). */
    count(projectId?: string): number {
      if (projectId !== undefined) return byProject.get(projectId)?.size ?? 0;
      let n = 0;
      for (const set of byProject.values()) n += set.size;
      return n;
    },

    /** Ends every stream (`reason: "shutdown"`) and refuses new ones: the server is stopping. */
    closeAll() {
      closing = true;
      for (const set of [...byProject.values()]) for (const s of [...set]) s.end('shutdown');
    },

    close() {
      this.closeAll();
      for (const off of offBus) off();
    },
  };
}
export type EventStreams = ReturnType<typeof createEventStreams>;
