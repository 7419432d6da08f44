import type { FastifyInstance } from 'fastify';
import type { Services } from '../../services.ts';

export function extendInfoRoutes(_app: FastifyInstance, _deps: { services: Services }) {}
