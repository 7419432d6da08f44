/**
 * One error model for HTTP, MQTT and TCP (architecture.md §6). `errcode` is the number of
 * http-api.md §1; the HTTP layer maps it to a status, the broker to a `result: 0` payload.
 */
export interface FieldError {
  path: string;
  message: string;
}

export class AppError extends Error {
  override name = 'AppError';
  constructor(
    readonly errcode: number,
    message: string,
    readonly errors: FieldError[] = [],
  ) {
    super(message);
  }
}

export class BadRequest extends AppError {
  constructor(message = 'Invalid input', errors: FieldError[] = []) {
    super(400, message, errors);
  }
}
export class Unauthorized extends AppError {
  constructor(message = 'Not authenticated') {
    super(401, message);
  }
}
export class Forbidden extends AppError {
  constructor(message = 'Not allowed') {
    super(403, message);
  }
}
export class NotFound extends AppError {
  constructor(what = 'Resource') {
    super(404, `${what} not found`);
  }
}
export class Conflict extends AppError {
  constructor(message: string, errors: FieldError[] = []) {
    super(409, message, errors);
  }
}
/** The state of a resource forbids the call (device offline, group in use, …). */
export class StateConflict extends AppError {
  constructor(message: string) {
    super(422, message);
  }
}
export class TooManyRequests extends AppError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(429, message);
  }
}
/** A part the call needs is unreachable for now (cluster mode: the other nodes, docs/cluster.md); retry later. */
export class ServiceUnavailable extends AppError {
  constructor(message: string) {
    super(503, message);
  }
}
