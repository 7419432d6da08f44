import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { scopeOf } from '../../../domain/auth/principal.ts';
import type { Services } from '../../../composition/services.ts';
import { Id, IdParams } from '../common.schema.ts';
import { endpoint } from '../route.ts';

const Scalar = z.union([z.string().max(4096), z.number(), z.boolean()]);
const ExtendInfo = z.object({
  id: z.string(),
  info_type: z.string(),
  name: z.string(),
  descr: z.string(),
  value: z.unknown(),
  options: z.record(z.string(), z.unknown()),
  create_time: z.number(),
  update_time: z.number(),
  is_standard: z.boolean(),
});
const StandardInfoBody = z.object({
  info_type: z.string().min(1).max(64),
  value: z.record(z.string().min(1).max(64), Scalar).refine((v) => Object.keys(v).length <= 32, 'at most 32 fields'),
});
const ExtendInfosBody = z.object({
  infos: z
    .record(Id, Scalar)
    .refine((v) => Object.keys(v).length >= 1 && Object.keys(v).length <= 100, 'give 1 to 100 infos'),
});

export function extendInfoRoutes(app: FastifyInstance, { services }: { services: Services }) {
  const { extendInfos } = services;
  const tags = ['Devices'];

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/device/:id/extend_infos',
    access: 'project',
    tags,
    summary: "Read a device's extended information: standard infos (location, contact) then its type's custom infos",
    params: IdParams,
    response: z.object({ items: z.array(ExtendInfo) }),
    handler: ({ principal, params }) => extendInfos.list(scopeOf(principal), params.id),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/device/:id/standard_infos',
    access: 'manage',
    tags,
    summary: 'Update a standard info of a device (fields are merged)',
    description: '`location`: latitude (-90..90), longitude (-180..180), address. `contact`: name, phone, email.',
    params: IdParams,
    body: StandardInfoBody,
    response: z.record(z.string(), z.record(z.string(), z.unknown())),
    handler: ({ principal, params, body }) =>
      extendInfos.setStandard(scopeOf(principal), params.id, body.info_type, body.value),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/device/:id/extend_infos',
    access: 'manage',
    tags,
    summary: "Set custom extended infos of a device by definition id (validated against the type's definitions)",
    params: IdParams,
    body: ExtendInfosBody,
    response: z.record(z.string(), z.unknown()),
    handler: ({ principal, params, body }) => extendInfos.setCustom(scopeOf(principal), params.id, body.infos),
  });
}
