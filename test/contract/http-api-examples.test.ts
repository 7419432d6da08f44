import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestContext } from '../helpers/app.ts';
import { parseBlock, type SseEvent } from '../helpers/sse.ts';
import { createContractFixtures, type Placeholders } from './fixtures.ts';
import { fill, parseExamples, shapeDifferences, type Example } from './markdown.ts';

/**
 * Every request/answer example of docs/http-api.md is sent to the real application over a real
 * database (PGlite, or TEST_DATABASE_URL), in document order; the answer's status, field names and JSON
 * types must be the example's (markdown.ts states the format). DUMP_EXAMPLES=<file> writes the
 * answers there, for whoever edits the examples.
 */
const DOC = new URL('../../docs/http-api.md', import.meta.url);
const examples = parseExamples(readFileSync(DOC, 'utf8'));

let ctx: TestContext;
let values: Placeholders;
const dump: string[] = [];

beforeAll(async () => {
  // Webhook hosts of the examples (example.com) resolve to a public documentation address, without DNS.
  ctx = await createTestApp(
    {},
    { settings: { alarmNotify: { resolve: async () => [{ address: '93.184.215.14', family: 4 }] } } },
  );
  values = await createContractFixtures(ctx);
});
afterAll(async () => {
  if (process.env.DUMP_EXAMPLES)
    writeFileSync(process.env.DUMP_EXAMPLES, `${dump.join('\n')}\n### values\n${JSON.stringify(values)}\n`);
  await ctx?.close();
});

async function run(ex: Example) {
  const url = fill(ex.path, values, ex.line);
  const headers = Object.fromEntries(Object.entries(ex.headers).map(([k, v]) => [k, fill(v, values, ex.line)]));
  const payload = ex.body === undefined ? undefined : fill(ex.body, values, ex.line);
  const res = await ctx.app.inject({
    method: ex.method as 'GET',
    url,
    headers,
    ...(payload !== undefined ? { payload } : {}),
  });
  return res;
}

/**
 * What causes the kind of event an event-stream example shows (its first message): the fixture thermometer
 * reports. Humidity only: the fixture alarm rule watches the temperature, and other examples need its alarm.
 */
const TRIGGERS: Record<string, () => Promise<unknown>> = {
  attributes: async () => {
    const identity = await ctx.services.deviceAuth.authenticate(values.project_key!, values.device_token!);
    return ctx.services.currentValues.report(identity!, { humidity: 45 });
  },
};

/** An event-stream example: the stream opens, the documented kind of event is caused, its first message has the documented event name and data shape. */
async function checkEventStream(ex: Example) {
  const url = fill(ex.path, values, ex.line);
  const headers = Object.fromEntries(Object.entries(ex.headers).map(([k, v]) => [k, fill(v, values, ex.line)]));
  const documented: { events: SseEvent[]; comments: string[] } = { events: [], comments: [] };
  parseBlock(fill(ex.response.text, values, ex.response.line), documented);
  const want = documented.events[0];
  const trigger = want && TRIGGERS[want.event];
  if (!want || !trigger)
    throw new Error(
      `line ${ex.response.line}: an event-stream answer needs a first message whose event has a trigger in TRIGGERS`,
    );
  const res = await ctx.app.inject({ method: ex.method as 'GET', url, headers, payloadAsStream: true });
  expect(res.statusCode).toBe(ex.response.status);
  expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
  const stream = res.stream();
  const first = new Promise<SseEvent>((resolve, reject) => {
    let buffer = '';
    const got: { events: SseEvent[]; comments: string[] } = { events: [], comments: [] };
    const timer = setTimeout(() => reject(new Error(`line ${ex.line}: no ${want.event} message within 5 s`)), 5_000);
    stream.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      let cut: number;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        parseBlock(buffer.slice(0, cut), got);
        buffer = buffer.slice(cut + 2);
      }
      if (got.events[0]) {
        clearTimeout(timer);
        resolve(got.events[0]);
      }
    });
  });
  try {
    await trigger();
    const message = await first;
    dump.push(
      `### line ${ex.line}: ${ex.method} ${ex.path} -> event: ${message.event}\n${JSON.stringify(message.data, null, 2)}\n`,
    );
    expect(message.event).toBe(want.event);
    expect(message.id).toBe(want.id);
    expect(shapeDifferences(want.data, message.data)).toEqual([]);
  } finally {
    stream.destroy();
  }
}

describe('docs/http-api.md examples', () => {
  it('has examples', () => {
    expect(examples.length).toBeGreaterThan(50);
  });

  for (const ex of examples) {
    it(`line ${ex.line}: ${ex.method} ${ex.path}`, async () => {
      if (ex.response.kind === 'event-stream') return checkEventStream(ex);
      const res = await run(ex);
      dump.push(
        `### line ${ex.line}: ${ex.method} ${ex.path} -> ${res.statusCode}\n${res.headers['content-type']?.toString().includes('json') ? JSON.stringify(res.json(), null, 2) : res.body}\n`,
      );
      expect(res.statusCode, res.body.slice(0, 500)).toBe(ex.response.status);
      if (ex.response.kind === 'csv') {
        expect(res.headers['content-type']).toMatch(/^text\/csv/);
        expect(res.body.split('\n')[0]).toBe(ex.response.text);
        return;
      }
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      const documented: unknown = JSON.parse(fill(ex.response.text, values, ex.response.line));
      expect(shapeDifferences(documented, res.json()), res.body.slice(0, 2000)).toEqual([]);
    });
  }
});
