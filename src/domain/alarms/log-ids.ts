import { randomBytes } from 'node:crypto';

/**
 * Ids of alarm-log entries: like newId (src/lib/ids.ts, 6 bytes of milliseconds then random) but
 * strictly increasing within this process, so a trigger and its recovery written in the same
 * millisecond still list newest first. 6 bytes of time, 2 of sequence, 4 random; 24 hex characters.
 */
export function createLogIds() {
  let lastMs = 0;
  let seq = 0;
  return (now: number): string => {
    const ms = Math.max(now, lastMs);
    seq = ms === lastMs ? seq + 1 : 0;
    lastMs = ms;
    if (seq > 0xffff) {
      // 65,536 entries in one millisecond: borrow the next one.
      lastMs = ms + 1;
      seq = 0;
    }
    const buf = Buffer.alloc(12);
    buf.writeUIntBE(lastMs, 0, 6);
    buf.writeUInt16BE(seq, 6);
    randomBytes(4).copy(buf, 8);
    return buf.toString('hex');
  };
}
