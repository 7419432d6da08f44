import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import sjson from 'secure-json-parse';
import { appErrorOfDatabase } from '../../db/errors.ts';
import { unstorableJson } from '../../lib/unstorable-text.ts';
import { AppError, BadRequest, type FieldError } from '../../errors.ts';

/** Marks a body that could not be parsed as JSON (http-api.md §1: answered with 404). */
export class InvalidJson extends Error {
  override name = 'InvalidJson';
  readonly statusCode = 400;
  readonly code = 'INVALID_JSON';
}

export interface FailureBody {
  result: false;
  errcode: number;
  message: string;
  errors: FieldError[];
  request_id?: string;
}

export function failure(errcode: number, message: string, errors: FieldError[] = []): FailureBody {
  return { result: false, errcode, message, errors };
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** `device`: the route speaks the device protocol (device-protocol.md §3–5), not the project envelope. */
    envelope?: 'device';
  }
}

/** Failures are serialized here, not by the route's response schema (which describes success). */
function sendJson(reply: FastifyReply, status: number, body: object) {
  if (reply.request.routeOptions.config?.envelope === 'device') {
    // Device failures are `{"result":0,"errcode","message"}`, HTTP 200 except 401, 429 and server faults.
    const {
      errcode = 400,
      message = 'Invalid request',
      request_id,
    } = body as { errcode?: number; message?: string; request_id?: string };
    status = status === 401 || status === 429 || status >= 500 ? status : 200;
    body = { result: 0, errcode, message, ...(request_id ? { request_id } : {}) };
  }
  return reply.code(status).type('application/json; charset=utf-8').send(JSON.stringify(body));
}

const LOCATION: Record<string, string> = { body: '', querystring: 'query.', params: 'path.', headers: 'header.' };

/**
 * The envelope and error rules of http-api.md §1: business failures answer 200 with
 * `result: false`; 401 and 429 keep their status; unknown routes and invalid JSON answer 404.
 */
export function registerEnvelope(app: FastifyInstance, bodyLimit: number) {
  // Every body is read as JSON whatever its content type (curl -d sends form encoding by default).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit }, (_req, body, done) => {
    const text = body as string;
    if (text.trim() === '') return done(null, undefined);
    let parsed: unknown;
    try {
      // Prototype-poisoning keys (__proto__, constructor.prototype) are stripped, as Fastify's own parser does.
      parsed = sjson.parse(text, undefined, { protoAction: 'remove', constructorAction: 'remove' });
    } catch {
      return done(new InvalidJson('Invalid JSON message'), undefined);
    }
    const problem = unstorableJson(parsed);
    if (problem) return done(new BadRequest(problem), undefined);
    done(null, parsed);
  });

  app.addHook('preValidation', async (req) => {
    const problem = unstorableJson(req.query) ?? unstorableJson(req.params);
    if (problem) throw new BadRequest(problem);
  });

  app.setNotFoundHandler((_req, reply) => sendJson(reply, 404, { message: 'Request invalid' }));

  app.setErrorHandler((err: FastifyError | AppError | Error, req: FastifyRequest, reply: FastifyReply) => {
    if (err instanceof InvalidJson) {
      return sendJson(reply, 404, { result: false, message: 'Invalid JSON message', errcode: 400 });
    }
    const mapped = err instanceof AppError ? err : appErrorOfDatabase(err);
    if (mapped) err = mapped;
    if (err instanceof AppError) {
      const status = err.errcode === 401 || err.errcode === 429 || err.errcode === 503 ? err.errcode : 200;
      if ('retryAfterSeconds' in err) reply.header('Retry-After', String(err.retryAfterSeconds));
      return sendJson(reply, status, failure(err.errcode, err.message, err.errors));
    }
    if (hasZodFastifySchemaValidationErrors(err)) {
      const prefix = LOCATION[(err as FastifyError).validationContext ?? 'body'] ?? '';
      const errors = err.validation.map((v) => ({
        path: prefix + v.instancePath.slice(1).replaceAll('/', '.'),
        message: v.message ?? 'invalid',
      }));
      const first = errors[0];
      const message = first ? `Invalid input: ${first.path || 'body'}: ${first.message}` : 'Invalid input';
      return sendJson(reply, 200, failure(400, message, errors));
    }
    const status = (err as FastifyError).statusCode ?? 500;
    if (status === 413 || (err as FastifyError).code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return sendJson(reply, 200, failure(400, `Request body is larger than ${bodyLimit} bytes`));
    }
    if (status === 429) {
      return sendJson(reply, 429, failure(429, err.message || 'Too many requests'));
    }
    if (status >= 400 && status < 500) {
      return sendJson(reply, 200, failure(400, err.message || 'Invalid request'));
    }
    // The logger's error serializer (src/logger.ts) keeps query parameters out of the log.
    req.log.error({ err }, 'unhandled error');
    return sendJson(reply, 500, { ...failure(500, 'Internal server error'), request_id: String(req.id) });
  });
}
