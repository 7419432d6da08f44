import type { CommandReply, CommandRow } from '../../db/repositories/commands.repository.ts';
import type { CommandState } from '../../db/schema/index.ts';

/** States a command never leaves (device-protocol.md §10). */
export const FINAL_STATES: ReadonlySet<CommandState> = new Set(['replied', 'timeout', 'expired', 'failed']);

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
