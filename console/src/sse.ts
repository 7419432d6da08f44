/**
 * A Server-Sent Events parser for `GET /api/v1/events` (the event-stream format of the WHATWG HTML standard),
 * fed with decoded text chunks as they arrive from fetch(): EventSource cannot send the Authorization header.
 */
export interface SseMessage {
  id: string | undefined;
  event: string;
  data: string;
}

export class SseParser {
  private buffer = '';
  private data: string[] = [];
  private event = '';
  private id: string | undefined;
  /** The id of the last dispatched message (the stream's `Last-Event-ID`). */
  lastId: string | undefined;

  /** Feeds a chunk; returns the messages completed by it (a message ends at an empty line). */
  push(chunk: string): SseMessage[] {
    this.buffer += chunk;
    const out: SseMessage[] = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (!match) break;
      // A lone \r at the end of the chunk may be the first half of \r\n: wait for more.
      if (match[0] === '\r' && match.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const msg = this.line(line);
      if (msg) out.push(msg);
    }
    return out;
  }

  private line(line: string): SseMessage | undefined {
    if (line === '') {
      if (this.data.length === 0) {
        this.event = '';
        return undefined;
      }
      const msg: SseMessage = { id: this.id, event: this.event || 'message', data: this.data.join('\n') };
      this.lastId = this.id;
      this.data = [];
      this.event = '';
      return msg;
    }
    if (line.startsWith(':')) return undefined; // a comment (`: ping`)
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id' && !value.includes('\0')) this.id = value;
    return undefined;
  }
}

/** One live event: the kind and its payload (docs/device-protocol.md §9 payloads). */
export interface LiveEvent {
  kind: string;
  payload: LivePayload;
}

export interface LivePayload {
  device?: { id: string; name: string };
  ts?: number;
  [key: string]: unknown;
}

/** Parses a message's JSON data; a message that is not a JSON object is skipped (undefined). */
export function toLiveEvent(msg: SseMessage): LiveEvent | undefined {
  try {
    const payload: unknown = JSON.parse(msg.data);
    if (!payload || typeof payload !== 'object' || Array.isArray(payload)) return undefined;
    return { kind: msg.event, payload: payload as LivePayload };
  } catch {
    return undefined;
  }
}

/** The events URL for a set of kinds and devices (both optional). */
export function eventsUrl(kinds: readonly string[], devices?: readonly string[]): string {
  const q = new URLSearchParams();
  if (kinds.length) q.set('kinds', kinds.join(','));
  if (devices && devices.length) q.set('device', devices.join(','));
  const s = q.toString();
  return '/api/v1/events' + (s ? `?${s.replace(/%2C/g, ',')}` : '');
}

/** Reconnect delay after `attempt` failures: 1 s doubling to 30 s. */
export function backoff(attempt: number): number {
  return Math.min(30_000, 1000 * 2 ** Math.max(0, attempt));
}

export interface StreamOptions {
  token: string;
  kinds: readonly string[];
  devices?: readonly string[];
  onEvent: (e: LiveEvent) => void;
  /** Called with true when the stream is open, false when it dropped or is unavailable. */
  onState?: (open: boolean) => void;
  /** A 401: the session has ended. */
  onUnauthorized?: () => void;
  fetchImpl?: typeof fetch;
}

/** Keeps a live stream open (reconnecting with back-off) until the returned function is called. */
export function openStream(opts: StreamOptions): () => void {
  const ctl = new AbortController();
  const doFetch = opts.fetchImpl ?? fetch;
  let attempt = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const run = async (): Promise<void> => {
    const parser = new SseParser();
    try {
      const res = await doFetch(eventsUrl(opts.kinds, opts.devices), {
        headers: { Authorization: `Bearer ${opts.token}`, Accept: 'text/event-stream' },
        signal: ctl.signal,
      });
      if (res.status === 401) {
        opts.onUnauthorized?.();
        return;
      }
      if (!res.ok || !res.body || !(res.headers.get('content-type') ?? '').includes('text/event-stream')) {
        throw new Error(`events: HTTP ${res.status}`);
      }
      attempt = 0;
      opts.onState?.(true);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const msg of parser.push(value)) {
          const e = toLiveEvent(msg);
          if (e) opts.onEvent(e);
        }
      }
    } catch {
      // dropped or unavailable: retried below
    }
    if (ctl.signal.aborted) return;
    opts.onState?.(false);
    timer = setTimeout(() => void run(), backoff(attempt++));
  };
  void run();
  return () => {
    ctl.abort();
    if (timer) clearTimeout(timer);
  };
}
