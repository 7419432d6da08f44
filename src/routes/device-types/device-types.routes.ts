// Skeleton: filled in by the area's implementation.
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../services.ts';

export function deviceTypeRoutes(_app: FastifyInstance, _deps: { services: Services }) {}
