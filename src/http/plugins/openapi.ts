import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';

/** OpenAPI generated from the routes' zod schemas; UI at /docs, JSON at /docs/json. */
export async function registerOpenApi(app: FastifyInstance) {
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'IoT Cloud project API',
        description:
          'ThingsCloud-compatible project HTTP API. Every answer is an envelope: `{"result": true, "info": …}` on ' +
          'success, `{"result": false, "errcode", "message", "errors"}` on failure (HTTP 200, except 401, 429, 404 for ' +
          'unknown routes and unparseable bodies, and 500 for a server fault).',
        version: '1.0.0',
      },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      },
    },
    transform: jsonSchemaTransform,
    // Emits components for registered and recursive schemas so every $ref resolves.
    transformObject: jsonSchemaTransformObject,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
}
