import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { scopeOf, type Principal } from '../../../domain/auth/principal.ts';
import type { Services } from '../../../composition/services.ts';
import { IdParams } from '../common.schema.ts';
import { Empty, endpoint } from '../route.ts';
import {
  AggregateQuery,
  AggregateResult,
  AttributeList,
  DeviceIdentifierParams,
  ExportQuery,
  RemoveAttributesBody,
  Series,
  SeriesQuery,
} from './device-data.schema.ts';

const RANGE_NOTE =
  'Times in ms (a fractional part is floored). With both `start_time` and `end_time`, that range (at most 30 days, else errcode 400); ' +
  '`end_time` alone: the 30 days before it; `start_time` alone: from now back to it, at most 30 days (`start_time=0`: the last 30 days); ' +
  'neither: the last 30 days.';

/** Device data of http-api.md §3: current values, history, and (beyond the vendor) aggregates and CSV. */
export function deviceDataRoutes(app: FastifyInstance, { services }: { services: Services }) {
  const { history } = services;
  const tags = ['Device data'];

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/device/:id/attributes',
    access: 'project',
    tags,
    summary: "A device's current attribute values with their models",
    description:
      '`attr_type`: where the value came from (`report`, `push`, `cloud`). `model.name` is the identifier when the type defines no model for it.',
    params: IdParams,
    response: AttributeList,
    handler: ({ principal, params }) => history.attributes(scopeOf(principal), params.id),
  });

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/device/:id/attribute/:identifier/series',
    access: 'project',
    tags,
    summary: "One attribute's history, newest first",
    description: `${RANGE_NOTE} \`page_records\` 1–1000 (default 20). \`ts\` in ms, \`timestamp\` the same instant in ISO 8601, \`type\` the value's data type.`,
    params: DeviceIdentifierParams,
    query: SeriesQuery,
    response: Series,
    handler: ({ principal, params, query }) => history.series(scopeOf(principal), params.id, params.identifier, query),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/device/:id/attributes_remove',
    access: 'manage',
    tags,
    summary: "Remove attributes' current values (and their history with `history: true`)",
    params: IdParams,
    body: RemoveAttributesBody,
    response: Empty,
    handler: ({ principal, params, body }) =>
      history.remove(scopeOf(principal), params.id, body.keys, body.history ?? false),
  });

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/device/:id/attributes/aggregate',
    access: 'project',
    tags,
    summary: 'Aggregates of numeric attributes per interval',
    description:
      `\`identifiers\` comma-separated (1–20); \`fn\` one of avg, min, max, sum, count, first, last; \`interval\` like 30s, 15m, 1h, 1d ` +
      `(buckets aligned to the epoch, at most 10,000 per call). Non-numeric values count in \`count\` only. ${RANGE_NOTE}`,
    params: IdParams,
    query: AggregateQuery,
    response: AggregateResult,
    handler: ({ principal, params, query }) =>
      history.aggregate(scopeOf(principal), params.id, {
        ...query,
        identifiers: query.identifiers,
        interval_ms: query.interval,
      }),
  });

  // CSV is not the JSON envelope: a plain route with the same access rule and the same error envelope.
  app.route({
    method: 'GET',
    url: '/api/v1/device/:id/attributes/export',
    config: { access: 'project' },
    schema: {
      summary: 'Export attribute history as CSV',
      description: `\`identifiers\` comma-separated (1–20). Lines \`ts,timestamp,identifier,value\`, oldest first. ${RANGE_NOTE}`,
      tags,
      security: [{ bearer: [] }],
      params: IdParams,
      querystring: ExportQuery,
      produces: ['text/csv'],
      response: { 200: z.string().describe('text/csv') },
    },
    handler: async (req, reply) => {
      const { id } = req.params as z.output<typeof IdParams>;
      const query = req.query as z.output<typeof ExportQuery>;
      const lines = await history.exportCsv(scopeOf(req.principal as Principal), id, query);
      return reply
        .type('text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="${id}-attributes.csv"`)
        .send(Readable.from(lines));
    },
  });
}
