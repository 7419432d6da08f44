import { deviceInScope } from '../devices/device-in-scope.ts';
import { unstorableJson } from '../../lib/unstorable-text.ts';
import type { Logger } from 'pino';
import {
  createCommandsRepository,
  type CommandReply,
  type CommandRow,
} from '../../db/repositories/commands.repository.ts';
import type { Db } from '../../db/client.ts';
import type { DevicesRepository } from '../../db/repositories/devices.repository.ts';
import { uniqueViolation } from '../../db/errors.ts';
import type { CommandState } from '../../db/schema.ts';
import { BadRequest, Conflict, StateConflict, type FieldError } from '../../errors.ts';
import { newId } from '../../lib/ids.ts';
import type { Scope } from '../auth/principal.ts';
import type { DeviceSession, SessionRegistry } from '../delivery/sessions.ts';
import type { DeviceIdentity } from '../devices/device-identity.ts';
import type { PresenceService } from '../devices/presence.service.ts';
import type { EventBus } from '../events/event-bus.ts';

/** Bounds of a command (device-protocol.md §3, §10); the HTTP schemas use the same numbers. */
export const COMMAND_LIMITS = {
  methodMax: 64,
  /** `<id>` of `command/send/<id>`: a positive 32-bit integer, as the SDKs parse it. */
  seqMax: 2_147_483_647,
  /** Serialized `params`, in bytes. */
  paramsMaxBytes: 64 * 1024,
  ttlMaxSeconds: 30 * 24 * 3600,
  timeoutMaxSeconds: 3600,
  timeoutDefaultSeconds: 30,
  syncWaitMaxSeconds: 60,
  /** Commands one device may have waiting for it (queued with a `ttl`); more are refused. */
  queuedPerDevice: 100,
  /** Queued commands delivered per page on connect: a long queue is never loaded whole. */
  deliveryPage: 20,
} as const;

/** Commands queued without a time to live exist only while their send() runs; older ones were cut short. */
const INTERRUPTED_AFTER_MS = 60_000;
/** A timer may fire a little before the reply deadline it was set for. */
const TIMER_SLACK_MS = 50;

const FINAL_STATES: ReadonlySet<CommandState> = new Set(['replied', 'timeout', 'expired', 'failed']);

export interface SendCommandInput {
  method: string;
  params?: Record<string, unknown>;
  /** The wire `<id>`; allocated per device when absent. */
  id?: number;
  /** Seconds an offline device's command waits for the device to connect; absent = fail at once. */
  ttl?: number;
  /** Seconds a sent command waits for its reply. */
  timeout?: number;
}

/** The body of `command/reply/<id>` (device-protocol.md §3); the topic's id is the one matched. */
export interface CommandReplyBody {
  method?: unknown;
  params?: unknown;
  id?: unknown;
}

export interface CommandsServiceDeps {
  db: Db;
  /** Resolves a device within the caller's scope (customers see only their devices). */
  devices: Pick<DevicesRepository, 'get'>;
  sessions: Pick<SessionRegistry, 'get'>;
  bus: Pick<EventBus, 'emit'>;
  presence: Pick<PresenceService, 'touch'>;
  clock?: () => number;
  logger: Pick<Logger, 'error' | 'warn'>;
  /** How often timed-out and expired commands are swept. */
  sweepMs?: number;
}

/** A command as the API shows it; `command_id` is the wire `<id>`. */
export function commandView(r: CommandRow) {
  return {
    id: r.id,
    command_id: r.seq,
    method: r.method,
    params: r.params as Record<string, unknown>,
    state: r.state,
    reply: (r.reply ?? null) as CommandReply | null,
    error: r.error,
    create_time: r.createTime,
    sent_time: r.sentTime,
    reply_time: r.replyTime,
    expire_time: r.expireTime,
  };
}
export type CommandView = ReturnType<typeof commandView>;

/**
 * The next `<id>` after the device's latest one that is not held by an open command, wrapping
 * after 2^31-1. Ids keep increasing, so a device that remembers recent ids never sees one reused soon.
 */
export function nextFreeSeq(latest: number | undefined, open: Iterable<number>): number {
  const taken = new Set(open);
  let seq = latest ?? 0;
  // Among taken.size + 1 consecutive candidates at least one is free.
  for (let i = 0; i <= taken.size; i++) {
    seq = seq >= COMMAND_LIMITS.seqMax || seq < 0 ? 1 : seq + 1;
    if (!taken.has(seq)) break;
  }
  return seq;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const inRange = (v: number, min: number, max: number) => Number.isInteger(v) && v >= min && v <= max;

/** The same rules as the HTTP schema, for callers that do not come through HTTP. */
function checkInput(input: SendCommandInput) {
  const errors: FieldError[] = [];
  const params = input.params ?? {};
  if (typeof input.method !== 'string' || input.method.length < 1 || input.method.length > COMMAND_LIMITS.methodMax) {
    errors.push({ path: 'method', message: `must be 1–${COMMAND_LIMITS.methodMax} characters` });
  }
  const problem = unstorableJson({ method: input.method, params });
  if (!isPlainObject(params)) errors.push({ path: 'params', message: 'must be a JSON object' });
  else if (problem) errors.push({ path: 'params', message: problem });
  else if (Buffer.byteLength(JSON.stringify(params)) > COMMAND_LIMITS.paramsMaxBytes) {
    errors.push({ path: 'params', message: `must be at most ${COMMAND_LIMITS.paramsMaxBytes} bytes as JSON` });
  }
  if (input.id !== undefined && !inRange(input.id, 1, COMMAND_LIMITS.seqMax))
    errors.push({ path: 'id', message: `must be an integer 1–${COMMAND_LIMITS.seqMax}` });
  if (input.ttl !== undefined && !inRange(input.ttl, 1, COMMAND_LIMITS.ttlMaxSeconds))
    errors.push({ path: 'ttl', message: `must be an integer 1–${COMMAND_LIMITS.ttlMaxSeconds}` });
  const timeout = input.timeout ?? COMMAND_LIMITS.timeoutDefaultSeconds;
  if (!inRange(timeout, 1, COMMAND_LIMITS.timeoutMaxSeconds))
    errors.push({ path: 'timeout', message: `must be an integer 1–${COMMAND_LIMITS.timeoutMaxSeconds}` });
  if (errors.length) throw new BadRequest(`Invalid input: ${errors[0]!.path}: ${errors[0]!.message}`, errors);
  return { method: input.method, params, id: input.id, ttl: input.ttl, timeoutMs: timeout * 1000 };
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err)) || 'unknown error';

/**
 * Commands you can trust (device-protocol.md §10): every command is stored before it is sent, and
 * every state change is a conditional update of that row, so the log is the truth and a restart
 * loses nothing. HTTP calls send(); transports call deliverQueued() on connect and reply() on
 * `command/reply/<id>`.
 */
export function createCommandsService({
  db,
  devices,
  sessions,
  bus,
  presence,
  clock = Date.now,
  logger,
  sweepMs = 1_000,
}: CommandsServiceDeps) {
  const repo = createCommandsRepository(db);
  /** Synchronous callers waiting for a command to reach a final state, by command id. */
  const waiters = new Map<string, Set<() => void>>();
  let timer: NodeJS.Timeout | undefined;
  let sweeping: Promise<void> | undefined;

  function wake(id: string) {
    const set = waiters.get(id);
    if (!set) return;
    waiters.delete(id);
    for (const w of set) w();
  }

  function waitFor(id: string, ms: number) {
    let finish!: (how: 'woken' | 'elapsed') => void;
    const done = new Promise<'woken' | 'elapsed'>((resolve) => {
      const set = waiters.get(id) ?? new Set<() => void>();
      const onWake = () => finish('woken');
      const t = setTimeout(() => finish('elapsed'), ms);
      finish = (how) => {
        clearTimeout(t);
        set.delete(onWake);
        if (!set.size && waiters.get(id) === set) waiters.delete(id);
        resolve(how);
      };
      set.add(onWake);
      waiters.set(id, set);
    });
    return { done, cancel: () => finish('woken') };
  }

  const mustHaveDevice = (scope: Scope, deviceId: string) => deviceInScope(devices, scope, deviceId);

  /** `command/send/<id>` with `{method, params, id}`: topic id and body id are the same (device-protocol.md §3). */
  function publish(session: DeviceSession, row: CommandRow) {
    return session.send(
      `command/send/${row.seq}`,
      Buffer.from(JSON.stringify({ method: row.method, params: row.params, id: row.seq })),
    );
  }

  /**
   * Sends to one device choose their seq one at a time on this node: otherwise concurrent callers
   * all read the same free seq and all but one lose the insert. Another node can still race; the
   * unique index and the retry below cover that.
   */
  const allocating = new Map<string, Promise<unknown>>();
  function oneAtATime<T>(deviceId: string, fn: () => Promise<T>): Promise<T> {
    const run = (allocating.get(deviceId) ?? Promise.resolve()).then(fn, fn);
    const tail = run.then(
      () => {},
      () => {},
    );
    allocating.set(deviceId, tail);
    void tail.then(() => {
      if (allocating.get(deviceId) === tail) allocating.delete(deviceId);
    });
    return run;
  }

  function insert(
    projectId: string,
    deviceId: string,
    cmd: ReturnType<typeof checkInput>,
    now: number,
  ): Promise<CommandRow> {
    return oneAtATime(deviceId, () => insertOnce(projectId, deviceId, cmd, now));
  }

  async function insertOnce(
    projectId: string,
    deviceId: string,
    cmd: ReturnType<typeof checkInput>,
    now: number,
  ): Promise<CommandRow> {
    // Inserts of one device run one at a time (oneAtATime): the count cannot race on this node.
    if (cmd.ttl !== undefined && (await repo.countQueued(projectId, deviceId)) >= COMMAND_LIMITS.queuedPerDevice) {
      throw new Conflict(`At most ${COMMAND_LIMITS.queuedPerDevice} commands may wait for one device`, [
        { path: 'ttl', message: 'too many queued commands' },
      ]);
    }
    // An allocated seq can lose a race with a send on another node: pick again.
    for (let attempt = 1; ; attempt++) {
      let seq = cmd.id;
      if (seq === undefined) {
        const { latest, open } = await repo.seqState(projectId, deviceId);
        seq = nextFreeSeq(latest, open);
      }
      try {
        return await repo.insert({
          id: newId(now),
          projectId,
          deviceId,
          seq,
          method: cmd.method,
          params: cmd.params,
          state: 'queued',
          expireTime: cmd.ttl === undefined ? null : now + cmd.ttl * 1000,
          replyTimeoutMs: cmd.timeoutMs,
          createTime: now,
          updateTime: now,
        });
      } catch (err) {
        if (uniqueViolation(err) === undefined) throw err;
        if (cmd.id !== undefined) {
          throw new Conflict(`Command id ${seq} is still open on this device (queued or waiting for its reply)`, [
            { path: 'id', message: 'already open' },
          ]);
        }
        if (attempt >= 5) throw new Conflict('Too many concurrent commands to this device; retry');
      }
    }
  }

  /**
   * A publish failed because its session was being replaced: the newer session's own delivery on
   * connect may already have run and found nothing, so the re-queued commands go to it now.
   */
  function redeliverIfReplaced(deviceId: string, projectId: string, failed: DeviceSession) {
    const current = sessions.get(deviceId);
    if (!current || current === failed) return;
    void service.deliverQueued({ deviceId, projectId }).catch((err: unknown) => {
      logger.warn({ deviceId, err }, 'redelivery to the newer session failed');
    });
  }

  /** Publishes a stored command to a live session: claimed as sent first, so no other path sends it too. */
  async function deliverNow(
    projectId: string,
    row: CommandRow,
    session: DeviceSession,
    canQueue: boolean,
  ): Promise<CommandView> {
    const claimed = await repo.claim(projectId, row.id, clock());
    // Delivered meanwhile by deliverQueued() on a reconnect.
    if (!claimed) return commandView((await repo.get(projectId, row.id)) ?? row);
    try {
      await publish(session, claimed);
      return commandView(claimed);
    } catch (err) {
      const message = messageOf(err);
      if (canQueue) {
        logger.warn(
          { deviceId: row.deviceId, commandId: row.id, err },
          'command publish failed; kept queued for the next connect',
        );
        await repo.requeue(projectId, [row.id], clock());
        redeliverIfReplaced(row.deviceId, projectId, session);
        return commandView((await repo.get(projectId, row.id)) ?? row);
      }
      await repo.fail(projectId, row.id, `send failed: ${message}`, clock());
      throw new StateConflict(`Sending to the device failed: ${message}`);
    }
  }

  async function send(scope: Scope, deviceId: string, input: SendCommandInput): Promise<CommandView> {
    const cmd = checkInput(input);
    await mustHaveDevice(scope, deviceId);
    // Stored first: the log holds every command, whatever happens next. Checking the session only
    // after the insert means a device connecting meanwhile finds the row in deliverQueued().
    const row = await insert(scope.projectId, deviceId, cmd, clock());
    const session = sessions.get(deviceId);
    if (session) return deliverNow(scope.projectId, row, session, cmd.ttl !== undefined);
    if (cmd.ttl !== undefined) return commandView(row);
    await repo.fail(scope.projectId, row.id, 'device offline', clock());
    throw new StateConflict('Device is offline');
  }

  async function sweep(now = clock()): Promise<void> {
    if (sweeping) return sweeping;
    sweeping = (async () => {
      const timedOut = await repo.timeoutDue(now);
      const expired = await repo.expireDue(now);
      await repo.failInterrupted(now - INTERRUPTED_AFTER_MS, now);
      for (const id of [...timedOut, ...expired]) wake(id);
    })().finally(() => {
      sweeping = undefined;
    });
    return sweeping;
  }

  const service = {
    /**
     * Stores and sends a command. Online → sent; offline → 422 "Device is offline" (the failed row
     * stays in the log) unless `ttl` asks to queue it until the device connects.
     */
    send,

    /**
     * Sends, then waits up to `waitMs` for the reply (woken in-process by reply() or the sweeper).
     * Waiting the whole reply timeout ends in `timeout`; a shorter wait returns the state reached.
     */
    async sendSync(scope: Scope, deviceId: string, input: SendCommandInput, waitMs: number): Promise<CommandView> {
      const first = await send(scope, deviceId, input);
      if (FINAL_STATES.has(first.state)) return first;
      const wait = waitFor(first.id, waitMs);
      // Registered before this read: a reply that came earlier shows here, a later one wakes us.
      let row = await repo.get(scope.projectId, first.id);
      if (!row || FINAL_STATES.has(row.state)) {
        wait.cancel();
        return row ? commandView(row) : first;
      }
      if ((await wait.done) === 'elapsed') {
        const now = clock();
        const current = await repo.get(scope.projectId, first.id);
        if (
          current?.state === 'sent' &&
          current.sentTime !== null &&
          current.sentTime + current.replyTimeoutMs <= now + TIMER_SLACK_MS
        ) {
          await repo.timeoutOne(scope.projectId, first.id, now);
        }
      }
      row = await repo.get(scope.projectId, first.id);
      return row ? commandView(row) : first;
    },

    /**
     * Called by a transport when a device's session is up (and subscribed): sends its queued,
     * unexpired commands in creation order and expires the stale ones. Returns how many were sent.
     */
    async deliverQueued(identity: Pick<DeviceIdentity, 'deviceId' | 'projectId'>): Promise<number> {
      const session = sessions.get(identity.deviceId);
      if (!session) return 0;
      await repo.expireQueuedOf(identity.projectId, identity.deviceId, clock());
      let sent = 0;
      for (;;) {
        const rows = await repo.claimQueued(
          identity.projectId,
          identity.deviceId,
          clock(),
          COMMAND_LIMITS.deliveryPage,
        );
        for (const [i, row] of rows.entries()) {
          try {
            await publish(session, row);
            sent += 1;
          } catch (err) {
            // The session went away mid-way: what was not published waits for the next connect.
            logger.warn({ deviceId: identity.deviceId, err }, 'queued command delivery interrupted');
            await repo.requeue(
              identity.projectId,
              rows.slice(i).map((r) => r.id),
              clock(),
            );
            redeliverIfReplaced(identity.deviceId, identity.projectId, session);
            return sent;
          }
        }
        if (rows.length < COMMAND_LIMITS.deliveryPage || sessions.get(identity.deviceId) !== session) return sent;
      }
    },

    /**
     * A device's `command/reply/<seq>`: stored with its sent command (matched by seq among the
     * device's open commands). Returns whether a command matched, for `command/reply/response/<id>`.
     */
    async reply(
      identity: Pick<DeviceIdentity, 'deviceId' | 'projectId'>,
      seq: number,
      body: CommandReplyBody,
    ): Promise<boolean> {
      const now = clock();
      presence.touch(identity.deviceId, 'command_reply', now);
      if (!inRange(seq, 1, COMMAND_LIMITS.seqMax)) return false;
      const method = typeof body.method === 'string' ? body.method : undefined;
      const params = body.params === undefined ? {} : body.params;
      // The reply comes from a device: refused here with a 400 rather than by the database.
      const problem = unstorableJson({ method, params });
      if (problem) throw new BadRequest(`Invalid command reply: ${problem}`, [{ path: 'params', message: problem }]);
      if (method !== undefined && method.length > COMMAND_LIMITS.methodMax) {
        throw new BadRequest(`Invalid command reply: method is longer than ${COMMAND_LIMITS.methodMax} characters`, [
          { path: 'method', message: 'too long' },
        ]);
      }
      if (Buffer.byteLength(JSON.stringify(params)) > COMMAND_LIMITS.paramsMaxBytes) {
        throw new BadRequest(`Invalid command reply: params are larger than ${COMMAND_LIMITS.paramsMaxBytes} bytes`, [
          { path: 'params', message: 'too large' },
        ]);
      }
      const row = await repo.markReplied(identity.projectId, identity.deviceId, seq, method, params, now);
      if (!row) return false;
      const reply = row.reply as CommandReply;
      bus.emit('device.command_reply', {
        projectId: identity.projectId,
        deviceId: identity.deviceId,
        commandId: row.id,
        seq,
        method: reply.method,
        params: reply.params,
        ts: now,
      });
      wake(row.id);
      return true;
    },

    /** The device's command log, newest first. */
    async list(scope: Scope, deviceId: string, page: number, pageRecords: number) {
      await mustHaveDevice(scope, deviceId);
      const offset = (page - 1) * pageRecords;
      const rows = await repo.page(scope.projectId, deviceId, pageRecords, offset);
      const total =
        rows.length > 0 && rows.length < pageRecords
          ? offset + rows.length
          : await repo.total(scope.projectId, deviceId);
      return { items: rows.map(commandView), total, page_total: Math.ceil(total / pageRecords) };
    },

    /** Moves sent commands past their reply timeout to `timeout` and queued ones past their TTL to `expired`. */
    sweep,

    start() {
      timer ??= setInterval(() => {
        sweep().catch((err: unknown) => logger.error({ err }, 'command sweep failed; will retry'));
      }, sweepMs);
      timer.unref();
    },

    /** Stops the sweeper; synchronous callers still waiting get the state their command has now. */
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      for (const id of [...waiters.keys()]) wake(id);
      await sweeping?.catch(() => {});
    },
  };
  return service;
}
export type CommandsService = ReturnType<typeof createCommandsService>;
