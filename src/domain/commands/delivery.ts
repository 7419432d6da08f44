import type { Logger } from 'pino';
import type { CommandRow, CommandsRepository } from '../../db/repositories/commands.repository.ts';
import { AppError, StateConflict } from '../../errors.ts';
import type { DeviceSession, SessionRegistry } from '../delivery/sessions.ts';
import type { DeviceIdentity } from '../devices/device-identity.ts';
import { COMMAND_LIMITS } from './command-input.ts';
import { commandView, type CommandView } from './command-view.ts';

export interface CommandDeliveryDeps {
  repo: Pick<CommandsRepository, 'claim' | 'claimQueued' | 'expireQueuedOf' | 'fail' | 'get' | 'requeue'>;
  /** `get`: this node's session; `locate`: the device's session wherever it is (cluster mode). */
  sessions: Pick<SessionRegistry, 'get' | 'locate'>;
  clock: () => number;
  logger: Pick<Logger, 'warn'>;
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err)) || 'unknown error';

/** `command/send/<id>` with `{method, params, id}`: topic id and body id are the same (device-protocol.md §3). */
function publish(session: DeviceSession, row: CommandRow) {
  return session.send(
    `command/send/${row.seq}`,
    Buffer.from(JSON.stringify({ method: row.method, params: row.params, id: row.seq })),
  );
}

/**
 * Getting stored commands to a device's live session (device-protocol.md §10): each command is
 * claimed as sent before its publish, so no two paths (a send and a delivery on connect) send it
 * twice, and what could not be published goes back to the queue.
 */
export function createCommandDelivery({ repo, sessions, clock, logger }: CommandDeliveryDeps) {
  /**
   * A publish failed because its session was being replaced: the newer session's own delivery on
   * connect may already have run and found nothing, so the re-queued commands go to it now.
   */
  function redeliverIfReplaced(deviceId: string, projectId: string, failed: DeviceSession, wasLocal: boolean) {
    const current = sessions.get(deviceId);
    const failedRedelivery = (err: unknown) => logger.warn({ deviceId, err }, 'redelivery to the newer session failed');
    if (current) {
      if (current !== failed) void deliverQueued({ deviceId, projectId }).catch(failedRedelivery);
      return;
    }
    // Replaced by a newer login on another node (docs/cluster.md): the same race, its delivery on connect
    // ran there. Only for a session of this node: a failed send through another node is not retried here.
    if (!wasLocal) return;
    void sessions
      .locate(deviceId)
      .then((elsewhere) =>
        elsewhere && elsewhere !== failed ? deliverQueuedTo({ deviceId, projectId }, elsewhere, () => true) : 0,
      )
      .catch(failedRedelivery);
  }

  /** Publishes a stored command to a live session: claimed as sent first, so no other path sends it too. */
  async function deliverNow(
    projectId: string,
    row: CommandRow,
    session: DeviceSession,
    canQueue: boolean,
  ): Promise<CommandView> {
    const wasLocal = sessions.get(row.deviceId) === session;
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
        redeliverIfReplaced(row.deviceId, projectId, session, wasLocal);
        return commandView((await repo.get(projectId, row.id)) ?? row);
      }
      await repo.fail(projectId, row.id, `send failed: ${message}`, clock());
      // The domain's own errors (the cluster unreachable: 503) are answered as they are.
      if (err instanceof AppError) throw err;
      throw new StateConflict(`Sending to the device failed: ${message}`);
    }
  }

  /**
   * Called by a transport when a device's session is up (and subscribed): sends its queued,
   * unexpired commands in creation order and expires the stale ones. Returns how many were sent.
   */
  async function deliverQueued(identity: Pick<DeviceIdentity, 'deviceId' | 'projectId'>): Promise<number> {
    const session = sessions.get(identity.deviceId);
    if (!session) return 0;
    return deliverQueuedTo(identity, session, () => sessions.get(identity.deviceId) === session);
  }

  /** Sends the queued commands through `session`, page by page while `current()` says it still holds the device. */
  async function deliverQueuedTo(
    identity: Pick<DeviceIdentity, 'deviceId' | 'projectId'>,
    session: DeviceSession,
    current: () => boolean,
  ): Promise<number> {
    const wasLocal = sessions.get(identity.deviceId) === session;
    await repo.expireQueuedOf(identity.projectId, identity.deviceId, clock());
    let sent = 0;
    for (;;) {
      const rows = await repo.claimQueued(identity.projectId, identity.deviceId, clock(), COMMAND_LIMITS.deliveryPage);
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
          redeliverIfReplaced(identity.deviceId, identity.projectId, session, wasLocal);
          return sent;
        }
      }
      if (rows.length < COMMAND_LIMITS.deliveryPage || !current()) return sent;
    }
  }

  return { deliverNow, deliverQueued };
}
export type CommandDelivery = ReturnType<typeof createCommandDelivery>;
