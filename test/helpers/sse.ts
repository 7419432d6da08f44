/** One message of a text/event-stream: its `id`, `event` and `data` (parsed as JSON). */
export interface SseEvent {
  id: string | undefined;
  event: string;
  data: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- tests read arbitrary JSON
}

export interface SseStream {
  status: number;
  headers: Headers;
  /** The envelope when the answer is not a stream. */
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- tests read arbitrary JSON
  events: SseEvent[];
  /** Comment lines (`: ping`), without the colon. */
  comments: string[];
  /** Resolves when the server ends the stream or the client closes it. */
  ended: Promise<void>;
  isEnded(): boolean;
  close(): void;
}

/**
 * A small Server-Sent Events client over fetch and a streaming body, as the web console reads the
 * stream (EventSource cannot send an Authorization header). Messages are split on blank lines; a block of
 * comment lines only is a comment.
 */
export async function openSse(url: string, token: string | undefined): Promise<SseStream> {
  const ac = new AbortController();
  const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {}, signal: ac.signal });
  let ended = false;
  const s: SseStream = {
    status: res.status,
    headers: res.headers,
    body: undefined,
    events: [],
    comments: [],
    ended: Promise.resolve(),
    isEnded: () => ended,
    close: () => ac.abort(),
  };
  if (!res.headers.get('content-type')?.startsWith('text/event-stream')) {
    s.body = await res.json();
    ended = true;
    return s;
  }
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  s.ended = (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut: number;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          parseBlock(block, s);
        }
      }
    } catch (err) {
      if ((err as Error).name !== 'AbortError') throw err;
    } finally {
      ended = true;
    }
  })();
  return s;
}

export function parseBlock(block: string, into: Pick<SseStream, 'events' | 'comments'>) {
  const lines = block.split('\n');
  if (lines.every((l) => l.startsWith(':'))) {
    into.comments.push(...lines.map((l) => l.slice(1).trim()));
    return;
  }
  let id: string | undefined;
  let event = 'message';
  const data: string[] = [];
  for (const line of lines) {
    if (line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
    if (field === 'id') id = value;
    else if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  into.events.push({ id, event, data: JSON.parse(data.join('\n')) });
}
