import { commandReply as decode } from '../../core/payloads.ts';
import type { DeviceIdentity, DevicePort } from '../../core/port.ts';
import { failure, type Answer, type UpstreamHandler } from './context.ts';

/**
 * Stores a device's reply with its open command `id` (a direct device, or a gateway's sub-device):
 * `{"result":1}`, or a 404 when no open command has that id.
 */
export async function storeCommandReply(
  services: Pick<DevicePort, 'commands'>,
  identity: DeviceIdentity,
  id: number,
  reply: Record<string, unknown>,
): Promise<Answer> {
  const matched = await services.commands.reply(identity, id, reply);
  return matched ? { result: 1 } : failure(404, 'no open command with this id');
}

/** `command/reply/<id>` (device-protocol.md §3): stored with the open command of that id. */
export const commandReply: UpstreamHandler<'command_reply'> = ({ services, identity }, up, payload) =>
  storeCommandReply(services, identity, Number(up.id), decode(payload));
