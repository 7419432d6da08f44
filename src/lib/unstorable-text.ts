/** Text that PostgreSQL cannot store, refused at every edge (HTTP bodies, device payloads) with a clear 400. */
const NUL_MESSAGE = 'Strings must not contain NUL (\\u0000) characters';
const SURROGATE_MESSAGE = 'Strings must be well-formed Unicode (no lone \\uD800-\\uDFFF surrogates)';

/**
 * What PostgreSQL text and jsonb cannot store: NUL characters and lone UTF-16 surrogates (which
 * jsonb refuses and text silently mangles). Returns the problem, or undefined when the value is clean.
 */
export function unstorableText(value: unknown, depth = 0): string | undefined {
  if (typeof value === 'string') {
    if (value.includes('\0')) return NUL_MESSAGE;
    if (!value.isWellFormed()) return SURROGATE_MESSAGE;
    return undefined;
  }
  if (!value || typeof value !== 'object' || depth > 64) return undefined;
  for (const [key, v] of Object.entries(value)) {
    const problem = unstorableText(key, depth + 1) ?? unstorableText(v, depth + 1);
    if (problem) return problem;
  }
  return undefined;
}

/** A JSON text with a NUL or surrogate escape (not itself escaped); only such bodies need the walk. */
export const SUSPECT_ESCAPE = /(?:^|[^\\])(?:\\\\)*\\u(?:0000|[dD][89a-fA-F])/;

/**
 * The same check on a value's JSON.stringify output, which escapes exactly NUL and lone surrogates
 * (well-formed pairs are written as characters): the cheap check for payloads about to be stored.
 */
export const hasUnstorableText = (json: string) => SUSPECT_ESCAPE.test(json);
