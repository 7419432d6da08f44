/**
 * Turning the byte stream of a raw TCP link into messages (device-protocol.md §6). Pure: the
 * listener owns the clock and calls `gap()` when no byte arrived for the frame gap.
 *
 * - Hex and text streams (`createGapFramer`): bytes that arrive within the gap of each other form
 *   one message. A run longer than the maximum size is cut into messages of that size, so no byte
 *   is lost and memory stays bounded.
 * - JSON streams (`createJsonFramer`): a message is one complete JSON object or array, however the
 *   bytes were split and however many arrive in one chunk; the gap does not end them. Anything else
 *   between values (a bare number, `true`, a heartbeat, garbage) is a "run" that ends at the next
 *   `{` or `[` or at the gap, and is passed on as it is (the stream service checks it is JSON). A
 *   value or run over the maximum size is dropped whole (JSON cannot be cut) and counted.
 */
export interface Framer {
  /** Feeds a chunk; returns the messages it completes, in order. */
  push(chunk: Buffer): Buffer[];
  /** No byte arrived for the frame gap: returns what the gap ends. */
  gap(): Buffer[];
  /** Drops an incomplete message (a JSON value that stalled); returns whether there was one. */
  discard(): boolean;
  /** Whether bytes of an unfinished message are held. */
  readonly holding: boolean;
  /** Messages dropped for exceeding the size (JSON), since creation. */
  readonly oversized: number;
  /** Messages ended by reaching the size rather than by the gap (hex, text), since creation. */
  readonly cut: number;
}

export function createGapFramer(maxSize: number): Framer {
  let parts: Buffer[] = [];
  let size = 0;
  let cut = 0;

  function take(): Buffer {
    const message = Buffer.concat(parts, size);
    parts = [];
    size = 0;
    return message;
  }

  return {
    push(chunk) {
      const out: Buffer[] = [];
      let rest = chunk;
      while (rest.length) {
        const room = maxSize - size;
        const piece = rest.length <= room ? rest : rest.subarray(0, room);
        // Held as a copy: the chunk belongs to the caller.
        parts.push(Buffer.from(piece));
        size += piece.length;
        rest = rest.subarray(piece.length);
        if (size === maxSize) {
          out.push(take());
          cut += 1;
        }
      }
      return out;
    },
    gap: () => (size ? [take()] : []),
    discard() {
      const had = size > 0;
      parts = [];
      size = 0;
      return had;
    },
    get holding() {
      return size > 0;
    },
    oversized: 0,
    get cut() {
      return cut;
    },
  };
}

const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const isSpace = (b: number) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;

type Mode = 'idle' | 'value' | 'run' | 'skip_value' | 'skip_run';

/** Trailing JSON whitespace of a run is not part of it. */
function trimEnd(buf: Buffer): Buffer {
  let end = buf.length;
  while (end > 0 && isSpace(buf[end - 1]!)) end--;
  return end === buf.length ? buf : buf.subarray(0, end);
}

export function createJsonFramer(maxSize: number): Framer {
  let mode: Mode = 'idle';
  let depth = 0;
  let inString = false;
  let escape = false;
  /** Bytes of the current message from earlier chunks, and its length so far. */
  let held: Buffer[] = [];
  let length = 0;
  let oversized = 0;

  function message(chunk: Buffer, start: number, end: number): Buffer {
    const piece = chunk.subarray(start, end);
    const out = Buffer.concat(held.length ? [...held, piece] : [piece]);
    held = [];
    length = 0;
    return out;
  }

  function drop() {
    held = [];
    length = 0;
  }

  return {
    push(chunk) {
      const out: Buffer[] = [];
      let start = 0;
      for (let i = 0; i < chunk.length; i++) {
        const b = chunk[i]!;
        if (mode === 'idle') {
          if (isSpace(b)) continue;
          start = i;
          length = 0;
          inString = false;
          escape = false;
          if (b === OPEN_BRACE || b === OPEN_BRACKET) {
            mode = 'value';
            depth = 0;
          } else mode = 'run';
        }
        if (mode === 'value' || mode === 'run') {
          length += 1;
          if (length > maxSize) {
            drop();
            oversized += 1;
            mode = mode === 'value' ? 'skip_value' : 'skip_run';
          }
        }
        // Strings are tracked in every mode but idle: a brace inside a string is text.
        if (inString) {
          if (escape) escape = false;
          else if (b === BACKSLASH) escape = true;
          else if (b === QUOTE) inString = false;
          continue;
        }
        if (b === QUOTE) {
          inString = true;
          continue;
        }
        if (mode === 'run' || mode === 'skip_run') {
          if (b !== OPEN_BRACE && b !== OPEN_BRACKET) continue;
          // A value starts: the run before it ends here.
          if (mode === 'run') {
            const run = trimEnd(message(chunk, start, i));
            if (run.length) out.push(run);
          }
          mode = 'value';
          start = i;
          length = 1;
          depth = 0;
        }
        if (b === OPEN_BRACE || b === OPEN_BRACKET) depth += 1;
        else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
          depth -= 1;
          if (depth === 0) {
            if (mode === 'value') out.push(message(chunk, start, i + 1));
            mode = 'idle';
          }
        }
      }
      if (mode === 'value' || mode === 'run') held.push(Buffer.from(chunk.subarray(start)));
      return out;
    },

    gap() {
      if (mode === 'run') {
        mode = 'idle';
        const run = trimEnd(Buffer.concat(held));
        drop();
        return run.length ? [run] : [];
      }
      if (mode === 'skip_run') mode = 'idle';
      return [];
    },

    discard() {
      if (mode === 'idle') return false;
      mode = 'idle';
      drop();
      return true;
    },

    get holding() {
      return mode !== 'idle';
    },
    get oversized() {
      return oversized;
    },
    cut: 0,
  };
}
