import { execFile } from 'node:child_process';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { absorbDroppedTypeFetch } from '../../src/db/client.ts';
import { loggerOptions } from '../../src/logger.ts';

const CLIENT = fileURLToPath(new URL('../../src/db/client.ts', import.meta.url));

/** The error postgres.js 3.4 leaves unhandled when a new connection dies during its array-types query. */
function droppedTypeFetch(): Error {
  return Object.assign(new Error('write CONNECTION_CLOSED db:5432'), {
    code: 'CONNECTION_CLOSED',
    query:
      "select b.oid, b.typarray from pg_catalog.pg_type a left join pg_catalog.pg_type b on b.oid = a.typelem where a.typcategory = 'A'",
    parameters: ['SecretTokenAbc123XYZ789'],
  });
}

describe('the dropped array-types fetch of a new PostgreSQL connection', () => {
  it('is logged as a warning through the given logger with the error and its stack, not its query parameters', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const err = droppedTypeFetch();
    absorbDroppedTypeFetch(err, pino(loggerOptions('warn'), sink));
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0]!);
    expect(line.level).toBe(40);
    expect(line.msg).toMatch(/database connection lost/);
    expect(line.err.message).toBe('write CONNECTION_CLOSED db:5432');
    expect(line.err.stack).toContain('db-type-fetch.test.ts');
    expect(lines[0]).not.toContain('SecretTokenAbc123XYZ789');
  });

  it('any other unhandled rejection is thrown on', () => {
    const other = new Error('something else');
    expect(() => absorbDroppedTypeFetch(other)).toThrow(other);
  });

  it('without a logger goes to standard error as a pino warning line with the stack', async () => {
    const script = `
      const { absorbDroppedTypeFetch } = await import(${JSON.stringify(CLIENT)});
      const err = Object.assign(new Error('write CONNECTION_CLOSED db:5432'), {
        query: "select 1 from pg_catalog.pg_type where typcategory = 'A'",
      });
      absorbDroppedTypeFetch(err);
    `;
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      { timeout: 30_000 },
    );
    expect(stdout).toBe('');
    const line = JSON.parse(stderr.trim().split('\n').at(-1)!);
    expect(line.level).toBe(40);
    expect(line.msg).toMatch(/database connection lost/);
    expect(line.err.message).toBe('write CONNECTION_CLOSED db:5432');
    expect(line.err.stack).toMatch(/^\s+at /m);
  }, 40_000);
});
