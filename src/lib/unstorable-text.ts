/**
 * JSON that must be refused at every edge (HTTP bodies, device payloads) with a clear 400 instead of
 * failing later: text PostgreSQL cannot store (NUL characters; lone UTF-16 surrogates, which jsonb
 * refuses and text mangles), numbers JSON cannot carry (1e400 parses to Infinity and would be stored
 * as null), and nesting deep enough to overflow the stack of JSON.stringify (~4,000 levels).
 */
export const MAX_JSON_DEPTH = 32;

const NUL_MESSAGE = 'Strings must not contain NUL (\\u0000) characters';
const SURROGATE_MESSAGE = 'Strings must be well-formed Unicode (no lone \\uD800-\\uDFFF surrogates)';

function textProblem(s: string): string | undefined {
  if (s.includes('\0')) return NUL_MESSAGE;
  if (!s.isWellFormed()) return SURROGATE_MESSAGE;
  return undefined;
}

const at = (path: string, problem: string) => (path ? `${path}: ${problem}` : problem);

/**
 * The first problem of a parsed JSON value, prefixed with where it is (`a.b.0: …`), or undefined
 * when the value can be stored. Iterative: any depth is safe.
 */
export function unstorableJson(value: unknown, maxDepth = MAX_JSON_DEPTH): string | undefined {
  const stack: Array<[unknown, number, string]> = [[value, 0, '']];
  while (stack.length) {
    const [v, depth, path] = stack.pop()!;
    if (typeof v === 'string') {
      const problem = textProblem(v);
      if (problem) return at(path, problem);
    } else if (typeof v === 'number') {
      if (!Number.isFinite(v)) return at(path, 'Numbers must be finite');
    } else if (v !== null && typeof v === 'object') {
      if (depth >= maxDepth) return at(path, `JSON must not be nested deeper than ${maxDepth} levels`);
      for (const [key, child] of Object.entries(v)) {
        const problem = textProblem(key);
        if (problem) return at(path, problem);
        stack.push([child, depth + 1, path ? `${path}.${key}` : key]);
      }
    }
  }
  return undefined;
}
