import type { Output } from '../../simulator/stats.ts';

/** A simulator output that keeps what it is given; `text()` is all of it so far. */
export function sink(): Output & { text: () => string } {
  const chunks: string[] = [];
  return { write: (t) => void chunks.push(t), isTTY: false, text: () => chunks.join('') };
}
