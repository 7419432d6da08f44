import type { CommandsRepository } from '../../db/repositories/commands.repository.ts';
import type { MetricsPort } from '../metrics-port.ts';

/**
 * The command log, counting each state change it stores (docs/metrics.md, `iot_commands_total`). Every change
 * is one conditional update of the repository (device-protocol.md §10), so counting what those updates
 * return counts each command once per state it reaches, whichever path (send, delivery on connect, reply,
 * sweep) moved it.
 */
export function countedCommandsRepo(repo: CommandsRepository, metrics: Pick<MetricsPort, 'commandState'>) {
  const counted: CommandsRepository = {
    ...repo,
    async insert(row) {
      const inserted = await repo.insert(row);
      metrics.commandState(inserted.state);
      return inserted;
    },
    async claim(...args) {
      const row = await repo.claim(...args);
      if (row) metrics.commandState('sent');
      return row;
    },
    async claimQueued(...args) {
      const rows = await repo.claimQueued(...args);
      if (rows.length) metrics.commandState('sent', rows.length);
      return rows;
    },
    async fail(...args) {
      const row = await repo.fail(...args);
      if (row) metrics.commandState('failed');
      return row;
    },
    async requeue(projectId, ids, now) {
      const n = await repo.requeue(projectId, ids, now);
      // Sent back to the queue (the send failed while the command may wait): it reaches `queued` again.
      if (n) metrics.commandState('queued', n);
      return n;
    },
    async expireQueuedOf(...args) {
      const n = await repo.expireQueuedOf(...args);
      if (n) metrics.commandState('expired', n);
      return n;
    },
    async markReplied(...args) {
      const row = await repo.markReplied(...args);
      if (row) metrics.commandState('replied');
      return row;
    },
    async timeoutOne(...args) {
      const row = await repo.timeoutOne(...args);
      if (row) metrics.commandState('timeout');
      return row;
    },
    async timeoutDue(now) {
      const ids = await repo.timeoutDue(now);
      if (ids.length) metrics.commandState('timeout', ids.length);
      return ids;
    },
    async expireDue(now) {
      const ids = await repo.expireDue(now);
      if (ids.length) metrics.commandState('expired', ids.length);
      return ids;
    },
    async failInterrupted(...args) {
      const n = await repo.failInterrupted(...args);
      if (n) metrics.commandState('failed', n);
      return n;
    },
  };
  return counted;
}
