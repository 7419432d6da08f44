/**
 * Reading docs/http-api.md as data (its "How to read this document" section states the format):
 * - an endpoint is a heading whose text starts with the route in backticks, `` #### `GET /api/v1/devices` ``
 *   (several routes in one heading are allowed, each in its own backticks; path parameters as `:id`);
 * - an example is a fenced ```http block (request line, headers, a blank line, the body as sent) followed
 *   directly by the answer: a ```json block, whose info string may add `status=<code>` (default 200), or a
 *   ```csv block (compared by its first line), or for an event stream a ```text event-stream block holding its
 *   first message (`event:` and a one-line `data:` JSON);
 * - `<name>` is a placeholder filled from the fixtures, in requests and answers alike; in an answer, an object
 *   with the key `"..."` may have keys the example does not show, and an array element must have the shape of
 *   one of the example's elements (lists of several kinds of item show one of each).
 */

export const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'] as const;
const ROUTE = /`(GET|POST|PUT|DELETE|PATCH) (\/[^`\s]*)`/g;

export interface Fence {
  lang: string;
  info: string;
  content: string;
  /** 1-based line of the opening fence. */
  line: number;
}

export interface Heading {
  level: number;
  text: string;
  line: number;
  /** The routes the heading names, as `METHOD /path`. */
  routes: string[];
}

export interface Example {
  line: number;
  method: string;
  path: string;
  headers: Record<string, string>;
  /** The body exactly as written (placeholders still in it); undefined when there is none. */
  body: string | undefined;
  /** The answer as written: JSON text (placeholders still in it), for csv its first line, for an event stream the message. */
  response: { kind: 'json' | 'csv' | 'event-stream'; status: number; text: string; line: number };
  /** The endpoint heading above the example, if any. */
  endpoint: Heading | undefined;
}

export function routesIn(text: string): string[] {
  return [...text.matchAll(ROUTE)].map((m) => `${m[1]} ${m[2]}`);
}

export function parseMarkdown(md: string): { fences: Fence[]; headings: Heading[] } {
  const lines = md.split('\n');
  const fences: Fence[] = [];
  const headings: Heading[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const open = /^```(\S*)\s*(.*)$/.exec(line);
    if (open) {
      const start = i;
      const body: string[] = [];
      for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
      if (i >= lines.length) throw new Error(`unclosed code fence at line ${start + 1}`);
      fences.push({ lang: open[1] ?? '', info: open[2] ?? '', content: body.join('\n'), line: start + 1 });
      continue;
    }
    const h = /^(#{1,6})\s+(.*)$/.exec(line);
    if (h) {
      const text = h[2]!;
      // Only routes at the start of the heading name the endpoint.
      const lead = /^(`(?:GET|POST|PUT|DELETE|PATCH) \/[^`\s]*`(?:,\s*|\s+and\s+)?)+/.exec(text);
      headings.push({ level: h[1]!.length, text, line: i + 1, routes: lead ? routesIn(lead[0]) : [] });
    }
  }
  return { fences, headings };
}

function parseRequest(f: Fence) {
  const lines = f.content.split('\n');
  const first = /^(GET|POST|PUT|DELETE|PATCH) (\S+)(?: HTTP\/1\.1)?$/.exec(lines[0] ?? '');
  if (!first)
    throw new Error(`line ${f.line}: an http example starts with "METHOD /path", got ${JSON.stringify(lines[0])}`);
  const headers: Record<string, string> = {};
  let i = 1;
  for (; i < lines.length && lines[i]!.trim() !== ''; i++) {
    const h = /^([A-Za-z-]+):\s*(.*)$/.exec(lines[i]!);
    if (!h) throw new Error(`line ${f.line + i}: not a header: ${JSON.stringify(lines[i])}`);
    headers[h[1]!.toLowerCase()] = h[2]!;
  }
  const body = lines
    .slice(i + 1)
    .join('\n')
    .trim();
  return { method: first[1]!, path: first[2]!, headers, body: body === '' ? undefined : body };
}

/** The endpoint heading an example belongs to: the nearest heading above it with routes, unless a section heading without routes comes first. */
function endpointAbove(headings: Heading[], line: number): Heading | undefined {
  let deepest = Infinity;
  for (const h of [...headings].reverse()) {
    if (h.line > line) continue;
    if (h.level >= deepest) continue;
    if (h.routes.length > 0) return h;
    deepest = h.level;
  }
  return undefined;
}

export function parseExamples(md: string): Example[] {
  const { fences, headings } = parseMarkdown(md);
  const examples: Example[] = [];
  for (let k = 0; k < fences.length; k++) {
    const f = fences[k]!;
    if (f.lang !== 'http') continue;
    const answer = fences[k + 1];
    const eventStream = answer?.lang === 'text' && answer.info.trim() === 'event-stream';
    if (!answer || (answer.lang !== 'json' && answer.lang !== 'csv' && !eventStream))
      throw new Error(
        `line ${f.line}: an http example must be followed by a json or csv answer, or a text event-stream one`,
      );
    const status = Number(/status=(\d{3})/.exec(answer.info)?.[1] ?? 200);
    const response: Example['response'] =
      answer.lang === 'json'
        ? { kind: 'json', status, text: answer.content, line: answer.line }
        : eventStream
          ? { kind: 'event-stream', status, text: answer.content, line: answer.line }
          : { kind: 'csv', status, text: answer.content.split('\n')[0] ?? '', line: answer.line };
    examples.push({ line: f.line, ...parseRequest(f), response, endpoint: endpointAbove(headings, f.line) });
    k++;
  }
  return examples;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
const kind = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/**
 * Where `actual` differs from `example` in field names or JSON types: objects key by key (extra keys
 * only under `"..."`), arrays element by element against the example's elements (each must match one;
 * an empty example array admits only an empty array).
 */
export function shapeDifferences(example: unknown, actual: unknown, path = '$'): string[] {
  const ek = kind(example);
  const ak = kind(actual);
  if (ek !== ak) return [`${path}: documented ${ek}, got ${ak} (${JSON.stringify(actual)?.slice(0, 80)})`];
  if (ek === 'array') {
    const e = example as Json[];
    const a = actual as Json[];
    if (e.length === 0) return a.length === 0 ? [] : [`${path}: documented an empty array, got ${a.length} elements`];
    // Each element must have the shape of one of the documented elements (lists of several kinds show one of each).
    return a.flatMap((item, i) => {
      const tries = e.map((shape) => shapeDifferences(shape, item, `${path}[${i}]`));
      return tries.some((d) => d.length === 0) ? [] : tries.reduce((best, d) => (d.length < best.length ? d : best));
    });
  }
  if (ek === 'object') {
    const e = example as Record<string, Json>;
    const a = actual as Record<string, Json>;
    const open = '...' in e;
    const out: string[] = [];
    for (const key of Object.keys(e)) {
      if (key === '...') continue;
      if (!(key in a)) out.push(`${path}.${key}: documented, missing in the answer`);
      else out.push(...shapeDifferences(e[key], a[key], `${path}.${key}`));
    }
    if (!open)
      for (const key of Object.keys(a)) if (!(key in e)) out.push(`${path}.${key}: in the answer, not documented`);
    return out;
  }
  return [];
}

/** `<name>` placeholders replaced; an unknown name is an error (a typo in the docs). */
export function fill(text: string, values: Record<string, string>, line: number): string {
  return text.replace(/<([a-z_]+)>/g, (_m, name: string) => {
    const v = values[name];
    if (v === undefined) throw new Error(`line ${line}: unknown placeholder <${name}>`);
    return v;
  });
}

/** `/api/v1/device/:id` for any spelling of its parameters (`:id`, `{id}`, `<device_id>`). */
export function normalizeRoute(route: string): string {
  return route.replace(/\/(?::[A-Za-z_]+|\{[A-Za-z_]+\}|<[A-Za-z_]+>)(?=\/|$)/g, '/:_');
}
