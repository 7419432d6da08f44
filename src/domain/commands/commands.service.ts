import type { Logger } from 'pino';
import type { CommandReply, CommandsRepository } from '../../db/repositories/commands.repository.ts';
import type { DevicesRepository } from '../../db/repositories/devices.repository.ts';
import { BadRequest, StateConflict } from '../../errors.ts';
import { unstorableJson } from '../../lib/unstorable-text.ts';
import type { Scope } from '../auth/principal.ts';
import type { SessionRegistry } from '../delivery/sessions.ts';
import type { DeviceIdentity } from '../devices/device-identity.ts';
import { deviceInScope } from '../devices/device-in-scope.ts';
import type { PresenceService } from '../devices/presence.service.ts';
import type { EventBus } from '../events/event-bus.ts';
import { checkSendInput, COMMAND_LIMITS, type SendCommandInput } from './command-input.ts';
import { commandView, FINAL_STATES, type CommandView } from './command-view.ts';
import type { MetricsPort } from '../metrics-port.ts';
import { countedCommandsRepo } from './counted-repo.ts';
import { createCommandDelivery } from './delivery.ts';
import { createCommandStore } from './send.ts';
import { createCommandSweeper } from './sweeper.ts';
import { createSyncWaiters } from './sync-waiters.ts';

/** A timer may fire a little before the reply deadline it was set for. */
const TIMER_SLACK_MS = 50;

const isSeq = (v: number) => Number.isInteger(v) && v >= 1 && v <= COMMAND_LIMITS.seqMax;

/** The body of `command/reply/<id>` (device-protocol.md §3); the topic's id is the one matched. */
export interface CommandReplyBody {
  method?: unknown;
  params?: unknown;
  id?: unknown;
}

export interface CommandsServiceDeps {
  repo: CommandsRepository;
  /** Resolves a device within the caller's scope (customers see only their devices). */
  devices: Pick<DevicesRepository, 'get'>;
  /** `locate` for sending (wherever the device is), `get` for the edge's delivery on connect (this node). */
  sessions: Pick<SessionRegistry, 'get' | 'locate'>;
  bus: Pick<EventBus, 'emit'>;
  presence: Pick<PresenceService, 'touch'>;
  clock?: () => number;
  logger: Pick<Logger, 'error' | 'warn'>;
  /** How often timed-out and expired commands are swept. */
  sweepMs?: number;
  /** Cluster mode: whether this node runs the sweep now (it holds the lease; docs/cluster.md §4). */
  sweepRuns?: () => boolean;
  /**
   * A reply was stored (its id): told to the other nodes, where a synchronous caller may wait for it
   * (cluster mode, docs/cluster.md); they call `wake`.
   */
  onReplied?: (commandId: string) => void;
  /** Counts the commands reaching each state (docs/metrics.md); unset = not counted. */
  metrics?: Pick<MetricsPort, 'commandState'>;
}

/**
 * Commands you can trust (device-protocol.md §10): every command is stored before it is sent, and
 * every state change is a conditional update of that row, so the log is the truth and a restart
 * loses nothing. HTTP calls send(); transports call deliverQueued() on connect and reply() on
 * `command/reply/<id>`.
 */
export function createCommandsService({
  repo: storedRepo,
  devices,
  sessions,
  bus,
  presence,
  clock = Date.now,
  logger,
  sweepMs = 1_000,
  onReplied,
  sweepRuns,
  metrics,
}: CommandsServiceDeps) {
  const repo = metrics ? countedCommandsRepo(storedRepo, metrics) : storedRepo;
  const waiters = createSyncWaiters();
  const store = createCommandStore({ repo });
  const delivery = createCommandDelivery({ repo, sessions, clock, logger });
  const sweeper = createCommandSweeper({
    repo,
    clock,
    logger,
    sweepMs,
    onFinal: waiters.wake,
    ...(sweepRuns ? { runs: sweepRuns } : {}),
  });

  const mustHaveDevice = (scope: Scope, deviceId: string) => deviceInScope(devices, scope, deviceId);

  async function send(
    scope: Scope,
    deviceId: string,
    input: SendCommandInput,
    onId?: (id: string) => void,
  ): Promise<CommandView> {
    const cmd = checkSendInput(input);
    await mustHaveDevice(scope, deviceId);
    // Stored first: the log holds every command, whatever happens next. Checking the session only
    // after the insert means a device connecting meanwhile finds the row in deliverQueued().
    const row = await store.insert(scope.projectId, deviceId, cmd, clock(), onId);
    const session = await sessions.locate(deviceId);
    if (session) return delivery.deliverNow(scope.projectId, row, session, cmd.ttl !== undefined);
    if (cmd.ttl !== undefined) return commandView(row);
    await repo.fail(scope.projectId, row.id, 'device offline', clock());
    throw new StateConflict('Device is offline');
  }

  return {
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
      // The wait is registered under the command's id before the command exists, so a reply however
      // quick wakes it: no read is needed between the send and the wait. Its clock starts once the
      // command is sent, so waiting the whole reply timeout reaches the command's deadline.
      let wait: ReturnType<typeof waiters.register> | undefined;
      let first: CommandView;
      try {
        first = await send(scope, deviceId, input, (id) => (wait = waiters.register(id)));
      } catch (err) {
        wait?.cancel();
        throw err;
      }
      if (!wait || FINAL_STATES.has(first.state)) {
        wait?.cancel();
        return first;
      }
      const end = await wait.arm(waitMs);
      // Woken by a reply on this node: the stored row came with it.
      if (end.how === 'woken' && end.row) return commandView(end.row);
      if (end.how === 'elapsed') {
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
      const row = await repo.get(scope.projectId, first.id);
      return row ? commandView(row) : first;
    },

    /**
     * Called by a transport when a device's session is up (and subscribed): sends its queued,
     * unexpired commands in creation order and expires the stale ones. Returns how many were sent.
     */
    deliverQueued: delivery.deliverQueued,

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
      if (!isSeq(seq)) return false;
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
      waiters.wake(row.id, row);
      onReplied?.(row.id);
      return true;
    },

    /** Another node stored a reply to the command: a synchronous caller waiting here reads it now. */
    wake: (commandId: string) => waiters.wake(commandId),

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
    sweep: sweeper.sweep,

    start: sweeper.start,

    /** Stops the sweeper; synchronous callers still waiting get the state their command has now. */
    async stop() {
      sweeper.stop();
      waiters.wakeAll();
      await sweeper.settled();
    },
  };
}
export type CommandsService = ReturnType<typeof createCommandsService>;
