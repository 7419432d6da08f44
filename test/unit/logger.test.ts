import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { loggerOptions, scrubMessage, scrubUrl, serializeError } from '../../src/logger.ts';

const TOKEN = 'Xq7pLm2ZrT9vKw4sBn8c';
const PROJECT_KEY = 'Hd3kPq9WmZx2Lr7TbN5vYc1s';

/** What drizzle throws: the parameters in message and stack, the driver's error (postgres.js) as cause. */
function driverError() {
  const cause = Object.assign(new Error('duplicate key value violates unique constraint "devices_token_key"'), {
    name: 'PostgresError',
    code: '23505',
    detail: `Key (access_token)=(${TOKEN}) already exists.`,
    query: 'insert into devices (access_token) values ($1)',
    parameters: [TOKEN, PROJECT_KEY],
    args: [TOKEN, PROJECT_KEY],
  });
  const err = new Error(
    `Failed query: select 1 from projects where project_key = $1 and access_token = $2\nparams: ${PROJECT_KEY},${TOKEN}`,
  );
  return Object.assign(err, { name: 'DrizzleQueryError', query: 'select …', params: [PROJECT_KEY, TOKEN], cause });
}

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { log: pino(loggerOptions('trace'), stream), text: () => lines.join('') };
}

describe('the log error serializer', () => {
  it('keeps type, message, code, stack frames and the cause chain, never parameters or detail', () => {
    const out = serializeError(driverError());
    const text = JSON.stringify(out);
    expect(text).not.toContain(TOKEN);
    expect(text).not.toContain(PROJECT_KEY);
    expect(out).toMatchObject({
      type: 'DrizzleQueryError',
      message: 'Failed query: select 1 from projects where project_key = $1 and access_token = $2',
      cause: {
        type: 'PostgresError',
        code: '23505',
        message: 'duplicate key value violates unique constraint "devices_token_key"',
      },
    });
    expect(out.stack).toMatch(/^\s+at /);
    expect(out.cause?.stack).toMatch(/logger\.test\.ts/);
    expect(Object.keys(out.cause!).sort()).toEqual(['code', 'message', 'stack', 'type']);
  });

  it('scrubs credential-looking values and connection-string passwords out of messages, keeping ids', () => {
    expect(scrubMessage(`invalid input syntax for type uuid: "${TOKEN}"`)).toBe(
      'invalid input syntax for type uuid: "[redacted]"',
    );
    expect(scrubMessage('device 0190a1b2c3d4e5f6a7b8c9d0 not found')).toBe('device 0190a1b2c3d4e5f6a7b8c9d0 not found');
    expect(scrubMessage('connect to postgres://iot:s3cretPassw0rd@db:5432/iot failed')).toBe(
      'connect to postgres://iot:[redacted]@db:5432/iot failed',
    );
    const jwt = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJwaWQiOiJhYmMifQ.Sfl6KxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c';
    expect(scrubMessage(`bad token ${jwt}`)).toBe('bad token [redacted].eyJwaWQiOiJhYmMifQ.[redacted]');
    expect(scrubMessage("ENOENT: open '/tmp/iot-Ab12cd/pg/base/16384'")).toBe(
      "ENOENT: open '/tmp/iot-Ab12cd/pg/base/16384'",
    );
    expect(scrubUrl(`/device/v1/${TOKEN}/attributes?x=1`)).toBe('/device/v1/[redacted]/attributes?x=1');
    expect(scrubUrl('/device/v1/certificate')).toBe('/device/v1/certificate');
  });

  it('is what every logger of the server uses: objects under err, errors as the message, requests', () => {
    const { log, text } = capture();
    log.error(driverError());
    log.warn(
      { err: { message: `Failed query: select\nparams: ${PROJECT_KEY}` } },
      'written by a site that logs only the message',
    );
    log.error({ err: driverError() }, 'with a message');
    log.info(
      { req: { method: 'POST', url: `/device/v1/${TOKEN}/attributes`, headers: { 'project-key': PROJECT_KEY } } },
      'incoming request',
    );
    log.info({ body: { secret_key: PROJECT_KEY } }, 'a body');
    const logged = text();
    expect(logged).not.toContain(TOKEN);
    expect(logged).not.toContain(PROJECT_KEY);
    expect(logged).toContain('Failed query: select 1 from projects');
    expect(logged).toContain('/device/v1/[redacted]/attributes');
    expect(logged.trim().split('\n')).toHaveLength(5);
  });
});
