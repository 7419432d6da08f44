import type { CommandRow, CommandsRepository } from '../../db/repositories/commands.repository.ts';
import { Duplicate } from '../../db/errors.ts';
import { Conflict } from '../../errors.ts';
import { newId } from '../../lib/ids.ts';
import { KeyedQueue } from '../../lib/keyed-queue.ts';
import { COMMAND_LIMITS, type CheckedCommand } from './command-input.ts';

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

/**
 * Stores new commands as `queued` (device-protocol.md §10), each with a free `<id>` (seq) of its
 * device. Sends to one device choose their seq one at a time on this node: otherwise concurrent
 * callers all read the same free seq and all but one lose the insert. Another node can still race;
 * the unique index and the retry below cover that.
 */
export function createCommandStore({
  repo,
}: {
  repo: Pick<CommandsRepository, 'countQueued' | 'insert' | 'seqState'>;
}) {
  const allocating = new KeyedQueue<string>();

  async function insertOnce(projectId: string, deviceId: string, cmd: CheckedCommand, now: number, id: string) {
    // Inserts of one device run one at a time (the keyed queue): the count cannot race on this node.
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
          id,
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
        if (!(err instanceof Duplicate)) throw err;
        if (cmd.id !== undefined) {
          throw new Conflict(`Command id ${seq} is still open on this device (queued or waiting for its reply)`, [
            { path: 'id', message: 'already open' },
          ]);
        }
        if (attempt >= 5) throw new Conflict('Too many concurrent commands to this device; retry');
      }
    }
  }

  return {
    /**
     * Stores the command as `queued` with its seq; refused when the device's queue is full. `onId` learns
     * the command's id before the row exists (a synchronous send starts waiting on it). The id is drawn
     * inside the device's queue, so ids keep the order in which the device's commands are stored, which
     * the next seq is read by.
     */
    insert(
      projectId: string,
      deviceId: string,
      cmd: CheckedCommand,
      now: number,
      onId?: (id: string) => void,
    ): Promise<CommandRow> {
      return allocating.run(deviceId, () => {
        const id = newId(now);
        onId?.(id);
        return insertOnce(projectId, deviceId, cmd, now, id);
      });
    },
  };
}
