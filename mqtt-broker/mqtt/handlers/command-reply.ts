import { commandReply as decode } from '../../core/payloads.ts';
import { failure, type UpstreamHandler } from './context.ts';

/** `command/reply/<id>` (device-protocol.md §3): stored with the open command of that id. */
export const commandReply: UpstreamHandler<'command_reply'> = async ({ services, identity }, up, payload) => {
  const matched = await services.commands.reply(identity, Number(up.id), decode(payload));
  return matched ? { result: 1 } : failure(404, 'no open command with this id');
};
