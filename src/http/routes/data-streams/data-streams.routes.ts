import type { FastifyInstance } from 'fastify';
import { scopeOf } from '../../../domain/auth/principal.ts';
import type { Services } from '../../../composition/services.ts';
import { endpoint } from '../route.ts';
import { StreamMessages, StreamMessagesParams, StreamMessagesQuery } from './data-streams.schema.ts';

/** Reading back custom-data-stream messages (device-protocol.md §7). */
export function dataStreamRoutes(app: FastifyInstance, { services }: { services: Services }) {
  const { dataStreams } = services;

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/device/:id/data/:identifier/messages',
    access: 'project',
    tags: ['Device data'],
    summary: "A custom data stream's messages, up and down, newest first",
    description:
      'Every message of the stream: from the device (MQTT `data/<identifier>`, or the raw TCP link for its TCP stream) and pushed to it, ' +
      'with direction, transport, time and bytes. `page_records` is 1–100 (default 20). Times in ms (a fractional part is floored): with both ' +
      '`start_time` and `end_time`, that range (at most 30 days, else errcode 400); `end_time` alone: the 30 days before it; `start_time` ' +
      'alone: from now back to it, at most 30 days; neither: the last 30 days.',
    params: StreamMessagesParams,
    query: StreamMessagesQuery,
    response: StreamMessages,
    handler: ({ principal, params, query }) =>
      dataStreams.messages(scopeOf(principal), params.id, params.identifier, query),
  });
}
