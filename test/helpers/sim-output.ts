import type { Output } from '../../simulator/stats.ts';

/** A simulator output that keeps what it is given; `text()` is all of it so far. */
export function sink(): Output & { text: () => string } {
  const chunks: string[] = [];
  return { write: (t) => void chunks.push(t), isTTY: false, text: () => chunks.join('') };
}

/** The simulator's arguments naming where it connects (`--host`) and provisions (`--http`), and as what. */
export function simTarget(host: string, http: string, projectKey: string, typeKey: string): string[] {
  return ['--host', host, '--http', http, '--project-key', projectKey, '--type-key', typeKey];
}
