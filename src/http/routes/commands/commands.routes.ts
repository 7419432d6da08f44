import type { FastifyInstance } from 'fastify';
import { scopeOf } from '../../../domain/auth/principal.ts';
import { COMMAND_LIMITS } from '../../../domain/commands/command-input.ts';
import type { Services } from '../../../composition/services.ts';
import { IdParams } from '../common.schema.ts';
import { deviceOfRequest } from '../device-access/token-auth.ts';
import { endpoint } from '../route.ts';
import {
  AccessTokenParams,
  Command,
  CommandLog,
  CommandLogQuery,
  SendCommandBody,
  SyncSendCommandBody,
} from './commands.schema.ts';

const SEND_DESCRIPTION =
  'Stored before it is sent; published on `command/send/<id>` as `{method, params, id}`. `id` defaults to the next free id of the device. ' +
  'An offline device answers errcode 422 "Device is offline" unless `ttl` (seconds) asks to queue the command until the device connects. ' +
  '`timeout` (seconds, default 30) is how long a sent command waits for its reply. `info` is the stored command.';

export function commandRoutes(app: FastifyInstance, { services }: { services: Services }) {
  const { commands, deviceAuth } = services;
  const tags = ['Commands'];

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/control/device/:id/command',
    access: 'manage',
    tags,
    summary: 'Send a command to a device',
    description: SEND_DESCRIPTION,
    params: IdParams,
    body: SendCommandBody,
    response: Command,
    handler: ({ principal, params, body }) => commands.send(scopeOf(principal), params.id, body),
  });

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/device/:id/commands',
    access: 'project',
    tags,
    summary: "A device's command log, newest first",
    description:
      'Every command with its state (`queued`, `sent`, `replied`, `timeout`, `expired`, `failed`), reply and times; `page_records` is 1–100.',
    params: IdParams,
    query: CommandLogQuery,
    response: CommandLog,
    handler: ({ principal, params, query }) =>
      commands.list(scopeOf(principal), params.id, query.page, query.page_records),
  });

  // Application-side calls keyed by the device token and the Project-Key header (device-protocol.md §5).
  endpoint(app, {
    method: 'POST',
    url: '/app/device/v1/:access_token/command/send',
    access: 'public',
    tags,
    summary: 'Send a command to the device of this access token',
    description: `Header \`Project-Key\`. ${SEND_DESCRIPTION}`,
    params: AccessTokenParams,
    body: SendCommandBody,
    response: Command,
    handler: async ({ req, params, body }) => {
      const device = await deviceOfRequest(deviceAuth, req, params.access_token);
      return commands.send({ projectId: device.projectId }, device.deviceId, body);
    },
  });

  endpoint(app, {
    method: 'POST',
    url: '/app/device/v1/:access_token/command/sync/send',
    access: 'public',
    tags,
    summary: 'Send a command and wait for the reply',
    description:
      `Header \`Project-Key\`. As \`command/send\`, then waits up to \`wait\` seconds (default: the command's timeout, at most ${COMMAND_LIMITS.syncWaitMaxSeconds}) ` +
      'for the reply. `info.state` is `replied` (with `reply`), `timeout`, or the state reached when a shorter wait ended.',
    params: AccessTokenParams,
    body: SyncSendCommandBody,
    response: Command,
    handler: async ({ req, params, body }) => {
      const device = await deviceOfRequest(deviceAuth, req, params.access_token);
      const { wait, ...input } = body;
      const seconds =
        wait ?? Math.min(input.timeout ?? COMMAND_LIMITS.timeoutDefaultSeconds, COMMAND_LIMITS.syncWaitMaxSeconds);
      return commands.sendSync({ projectId: device.projectId }, device.deviceId, input, seconds * 1000);
    },
  });
}
