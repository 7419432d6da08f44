import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import sjson from 'secure-json-parse';
import { AppError, BadRequest, type FieldError } from '../errors.ts';

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

/** Failures are serialized here, not by the route's response schema (which describes success). */
function sendJson(reply: FastifyReply, status: number, body: object) {
  return reply.code(status).type('application/json; charset=utf-8').send(JSON.stringify(body));
}

const LOCATION: Record<string, string> = { body: '', querystring: 'query.', params: 'path.', headers: 'header.' };

/** A JSON `\u0000` escape not itself escaped: PostgreSQL text and jsonb cannot store NUL. */
const JSON_NUL = /(?:^|[^\\])(?:\\\\)*\\u0000/;
const NUL_MESSAGE = 'Strings must not contain NUL (\\u0000) characters';

function hasNul(values: unknown): boolean {
  if (!values || typeof values !== 'object') return false;
  return Object.values(values).some((v) => (typeof v === 'string' ? v.includes('\0') : Array.isArray(v) && v.some((x) => typeof x === 'string' && x.includes('\0'))));
}

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
    if (JSON_NUL.test(text)) return done(new BadRequest(NUL_MESSAGE), undefined);
    try {
      // Prototype-poisoning keys (__proto__, constructor.prototype) are stripped, as Fastify's own parser does.
      done(null, sjson.parse(text, undefined, { protoAction: 'remove', constructorAction: 'remove' }));
    } catch {
      done(new InvalidJson('Invalid JSON message'), undefined);
    }
  });

  app.addHook('preValidation', async (req) => {
    if (hasNul(req.query) || hasNul(req.params)) throw new BadRequest(NUL_MESSAGE);
  });

  app.setNotFoundHandler((_req, reply) => sendJson(reply, 404, { message: 'Request invalid' }));

  app.setErrorHandler((err: FastifyError | AppError | Error, req: FastifyRequest, reply: FastifyReply) => {
    if (err instanceof InvalidJson) {
      return sendJson(reply, 404, { result: false, message: 'Invalid JSON message', errcode: 400 });
    }
    if (err instanceof AppError) {
      const status = err.errcode === 401 || err.errcode === 429 ? err.errcode : 200;
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
    req.log.error({ err }, 'unhandled error');
    return sendJson(reply, 500, { ...failure(500, 'Internal server error'), request_id: String(req.id) });
  });
}
