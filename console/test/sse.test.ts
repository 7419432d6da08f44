import { describe, expect, it } from 'vitest';
import { backoff, eventsUrl, openStream, SseParser, toLiveEvent, type LiveEvent } from '../src/sse.ts';

describe('SSE parser', () => {
  it('parses id, event and data lines into one message per blank line; comments are skipped', () => {
    const p = new SseParser();
    const out = p.push(': ping\n\nid: 7\nevent: online\ndata: {"online":true}\n\n');
    expect(out).toEqual([{ id: '7', event: 'online', data: '{"online":true}' }]);
    expect(p.lastId).toBe('7');
  });

  it('joins a message split across chunks anywhere, also inside \\r\\n', () => {
    const p = new SseParser();
    const text = 'id: 1\r\nevent: attributes\r\ndata: {"a":1}\r\n\r\nid: 2\r\ndata: x\r\n\r\n';
    const out = [];
    for (const ch of text) out.push(...p.push(ch));
    expect(out).toEqual([
      { id: '1', event: 'attributes', data: '{"a":1}' },
      { id: '2', event: 'message', data: 'x' },
    ]);
  });

  it('joins several data lines with newlines, keeps a value without the optional space, and ignores unknown fields', () => {
    const p = new SseParser();
    expect(p.push('data:a\ndata: b\nretry: 10\nfoo: bar\n\n')).toEqual([
      { id: undefined, event: 'message', data: 'a\nb' },
    ]);
  });

  it('does not dispatch a message without data, and resets the event name after it', () => {
    const p = new SseParser();
    expect(p.push('event: overflow\n\n')).toEqual([]);
    expect(p.push('data: 1\n\n')).toEqual([{ id: undefined, event: 'message', data: '1' }]);
  });

  it('turns JSON objects into live events and skips anything else', () => {
    expect(
      toLiveEvent({ id: '1', event: 'online', data: '{"device":{"id":"d","name":"n"},"online":true,"ts":5}' }),
    ).toEqual({
      kind: 'online',
      payload: { device: { id: 'd', name: 'n' }, online: true, ts: 5 },
    });
    expect(toLiveEvent({ id: '1', event: 'online', data: 'not json' })).toBeUndefined();
    expect(toLiveEvent({ id: '1', event: 'online', data: '[1]' })).toBeUndefined();
  });

  it('builds the events URL with comma lists (docs: GET /api/v1/events?kinds=…&device=…)', () => {
    expect(eventsUrl(['online', 'alarm'])).toBe('/api/v1/events?kinds=online,alarm');
    expect(eventsUrl(['attributes'], ['a', 'b'])).toBe('/api/v1/events?kinds=attributes&device=a,b');
    expect(eventsUrl([])).toBe('/api/v1/events');
  });

  it('backs off from 1 s doubling to at most 30 s', () => {
    expect([0, 1, 2, 3, 4, 5, 10].map(backoff)).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  });
});

describe('openStream', () => {
  const streamOf = (chunks: string[]) =>
    new ReadableStream<Uint8Array>({
      start(c) {
        for (const ch of chunks) c.enqueue(new TextEncoder().encode(ch));
        c.close();
      },
    });

  it('sends the token in the Authorization header, not the URL, and delivers parsed events', async () => {
    const calls: { url: string; auth: string | null }[] = [];
    const events: LiveEvent[] = [];
    let close: () => void = () => {};
    await new Promise<void>((resolve) => {
      close = openStream({
        token: 'tok',
        kinds: ['online'],
        devices: ['d1'],
        fetchImpl: (async (url: string, init: RequestInit) => {
          calls.push({ url, auth: new Headers(init.headers).get('authorization') });
          return new Response(streamOf(['event: online\ndata: {"online":', 'true}\n\n']), {
            headers: { 'content-type': 'text/event-stream' },
          });
        }) as typeof fetch,
        onEvent: (e) => {
          events.push(e);
          resolve();
        },
      });
    });
    close();
    expect(calls[0]).toEqual({ url: '/api/v1/events?kinds=online&device=d1', auth: 'Bearer tok' });
    expect(events).toEqual([{ kind: 'online', payload: { online: true } }]);
  });

  it('reports a 401 as the end of the session and does not retry', async () => {
    let calls = 0;
    await new Promise<void>((resolve) => {
      openStream({
        token: 'old',
        kinds: [],
        fetchImpl: (async () => {
          calls++;
          return new Response('{}', { status: 401 });
        }) as unknown as typeof fetch,
        onEvent: () => {},
        onUnauthorized: resolve,
      });
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toBe(1);
  });

  it('says the stream is unavailable when the server answers something else than an event stream', async () => {
    const states: boolean[] = [];
    const close = await new Promise<() => void>((resolve) => {
      const c = openStream({
        token: 't',
        kinds: [],
        fetchImpl: (async () =>
          new Response('{"message":"Request invalid"}', { status: 404 })) as unknown as typeof fetch,
        onEvent: () => {},
        onState: (open) => {
          states.push(open);
          resolve(c);
        },
      });
    });
    close();
    expect(states).toEqual([false]);
  });
});
