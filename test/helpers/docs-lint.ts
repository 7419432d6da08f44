import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * Keeps the repository's links and citations true (architecture.md §14): relative Markdown links and
 * their anchors, section citations of the documents in docs/, citations of README headings in quotes, no path outside the
 * repository, no issue numbers. Pure over the files it is given, so each rule can be tested on its own.
 */
export interface LintInput {
  /** Text files by path relative to the repository root (posix separators). */
  files: ReadonlyMap<string, string>;
  /** Whether a path relative to the root exists (a file of any kind, or a directory). */
  exists(relPath: string): boolean;
}

/** The section sign, written as an escape so this file holds no citation of its own. */
const SS = '\u00a7';
const SECTION = String.raw`\d+(?:\.\d+)*`;

/** `[text](target)`, `![alt](target)`; the target may be in angle brackets and carry a title. */
const LINK = /!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/g;
/** `[label]: target` reference definitions. */
const REFERENCE = /^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/;
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const FENCE = /^ {0,3}(`{3,}|~{3,})/;

/**
 * A citation chain: an optional document, the section sign and a number, then more sections of the
 * same document (a range with a dash, or a list with commas, "and", "or", each with its own sign).
 * Group 1 = document name, 2 = first section, 3 = the rest.
 */
const CITATION = new RegExp(
  String.raw`(?:(?:docs\/)?([A-Za-z0-9_-]+)\.md\`?(?:\]\([^)\s]*\))?\`?\s*)?${SS}\s*(${SECTION})((?:\s*[–-]\s*${SECTION}|\s*(?:,|\/|and|or)\s*${SS}\s*${SECTION})*)`,
  'g',
);
const SECTION_IN_CHAIN = new RegExp(String.raw`(${SECTION})`, 'g');

/** A README named (`README`, `README's`, `mqtt-broker/README.md,`) and then a heading in double quotes. */
const README_CITATION = /((?:[\w.-]+\/)*README(?:\.md)?)`?(?:['’]s)?,?\s*(?:section\s+)?["“]([^"”\n]{1,100})["”]/g;

/** Issue numbers: the tracker word followed by a number, and a bare `#` with digits referring to one in prose. */
const ISSUE_WORD = new RegExp(String.raw`\b${'iss'}ues?\s*#?\s*\d+`, 'i');
const BARE_NUMBER = /(^|[\s([,;])#(\d{1,5})\b/g;
/**
 * What a bare `#N` may be without being an issue number: a reference to another project's tracker
 * (`owner/repo` + `#` + digits, and more numbers listed after it), and a CSS colour after a property (`color: #333`).
 */
const UPSTREAM_REFERENCE = /[\w.-]+\/[\w.-]+#\d+(?:\s*,\s*#\d+)*/g;
const CSS_COLOUR = /[:=]\s*#[0-9a-fA-F]{3,8}\b/g;

/** Paths that leave the repository, in any text. */
const OUTSIDE = [/(?:\.\.\/)+shared\//, /(?<![\w.-])\/work\//, /(?<![\w-])shared\/(?:spec|seeds)\//];

/** GitHub's anchor of a heading: formatting dropped, lower case, punctuation removed, spaces → hyphens. */
export function slug(heading: string): string {
  const text = plainHeading(heading);
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, '')
    .replace(/ /g, '-');
}

/** A heading's text as rendered: links reduced to their text, inline code and emphasis marks dropped. */
function plainHeading(heading: string): string {
  return heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '')
    .replace(/[`*~]/g, '')
    .trim();
}

/** Lines outside fenced code blocks, with their 1-based numbers. */
function proseLines(text: string): Array<{ line: string; n: number }> {
  const out: Array<{ line: string; n: number }> = [];
  let fence: string | undefined;
  text.split('\n').forEach((line, i) => {
    const f = FENCE.exec(line);
    if (fence) {
      if (f && f[1]![0] === fence[0] && f[1]!.length >= fence.length && line.trim() === f[1]) fence = undefined;
      return;
    }
    if (f) {
      fence = f[1];
      return;
    }
    out.push({ line, n: i + 1 });
  });
  return out;
}

/** Headings of a Markdown file: their anchors (duplicates numbered as GitHub does) and section numbers. */
export function headingsOf(markdown: string): { anchors: Set<string>; sections: Set<string>; titles: string[] } {
  const anchors = new Set<string>();
  const sections = new Set<string>();
  const titles: string[] = [];
  const seen = new Map<string, number>();
  for (const { line } of proseLines(markdown)) {
    const h = HEADING.exec(line);
    if (!h) continue;
    const title = h[2]!;
    titles.push(plainHeading(title));
    const base = slug(title);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count ? `${base}-${count}` : base);
    const num = /^(\d+(?:\.\d+)*)\.?(?:\s|$)/.exec(title);
    if (num) sections.add(num[1]!);
  }
  return { anchors, sections, titles };
}

const withoutCodeSpans = (line: string) => line.replace(/(`+)(?:(?!\1).)+?\1/g, (m) => ' '.repeat(m.length));

function checkLinks(
  file: string,
  text: string,
  input: LintInput,
  headings: (p: string) => ReturnType<typeof headingsOf> | undefined,
  out: string[],
) {
  const dir = path.posix.dirname(file);
  for (const { line, n } of proseLines(text)) {
    const prose = withoutCodeSpans(line);
    const targets = [...prose.matchAll(LINK)].map((m) => m[1]!);
    const ref = REFERENCE.exec(prose);
    if (ref) targets.push(ref[1]!);
    for (const raw of targets) {
      if (SCHEME.test(raw)) continue;
      const [pathPart = '', anchor] = raw.split('#', 2) as [string, string | undefined];
      const target = decodeURI(pathPart.split('?')[0]!);
      const resolved =
        target === ''
          ? file
          : target.startsWith('/')
            ? path.posix.normalize(target.slice(1))
            : path.posix.normalize(path.posix.join(dir, target));
      if (resolved === '..' || resolved.startsWith('../') || path.posix.isAbsolute(resolved)) {
        out.push(`${file}:${n}: link "${raw}" points outside the repository`);
        continue;
      }
      if (!input.exists(resolved)) {
        out.push(`${file}:${n}: link "${raw}": no file ${resolved}`);
        continue;
      }
      if (anchor !== undefined && resolved.endsWith('.md')) {
        const h = headings(resolved);
        if (!h?.anchors.has(anchor.toLowerCase()))
          out.push(`${file}:${n}: link "${raw}": ${resolved} has no heading #${anchor}`);
      }
    }
  }
}

function sectionsOfChain(first: string, rest: string): string[] {
  const out = [first];
  let previous = first;
  let rangeNext = false;
  for (const token of rest.split(/([–-])/)) {
    if (token === '–' || token === '-') {
      rangeNext = true;
      continue;
    }
    for (const m of token.matchAll(SECTION_IN_CHAIN)) {
      const s = m[1]!;
      if (rangeNext && /^\d+$/.test(previous) && /^\d+$/.test(s) && Number(s) > Number(previous)) {
        for (let i = Number(previous) + 1; i <= Number(s); i++) out.push(String(i));
      } else out.push(s);
      rangeNext = false;
      previous = s;
    }
  }
  return out;
}

/** How many lines above a bare section citation (in one comment or paragraph) may name its document. */
const NAMED_ABOVE = 5;

/**
 * A section without a document refers to the document named last before it on the same line or, in
 * code, in the lines just above it (no blank line between); in docs/<name>.md, otherwise to that file.
 */
function checkCitations(
  file: string,
  text: string,
  headings: (p: string) => ReturnType<typeof headingsOf> | undefined,
  out: string[],
) {
  const ownDoc = /^docs\/([^/]+)\.md$/.exec(file)?.[1];
  let named: { doc: string; line: number } | undefined;
  text.split('\n').forEach((line, i) => {
    if (
      line.trim() === '' ||
      /^\s*(?:\/\*\*?|\*\/)\s*$/.test(line) ||
      (named && (ownDoc || i - named.line > NAMED_ABOVE))
    )
      named = undefined;
    for (const m of line.matchAll(CITATION)) {
      if (m[1]) named = { doc: m[1], line: i };
      const doc = m[1] ?? named?.doc ?? ownDoc;
      const cited = m[0].trim();
      if (!doc) {
        out.push(
          `${file}:${i + 1}: "${cited}": a section citation must name its document (device-protocol.md ${SS}N, http-api.md ${SS}N, architecture.md ${SS}N)`,
        );
        continue;
      }
      const target = `docs/${doc}.md`;
      const h = headings(target);
      if (!h) {
        out.push(`${file}:${i + 1}: "${cited}": there is no ${target}`);
        continue;
      }
      for (const s of sectionsOfChain(m[2]!, m[3] ?? '')) {
        if (!h.sections.has(s)) out.push(`${file}:${i + 1}: "${cited}": ${target} has no section ${s}`);
      }
    }
  });
}

function checkReadmeCitations(
  file: string,
  text: string,
  headings: (p: string) => ReturnType<typeof headingsOf> | undefined,
  out: string[],
) {
  text.split('\n').forEach((line, i) => {
    for (const m of line.matchAll(README_CITATION)) {
      const named = m[1]!;
      const target = named.includes('/')
        ? path.posix.normalize(named.endsWith('.md') ? named : `${named}.md`)
        : 'README.md';
      const quoted = m[2]!.toLowerCase();
      const h = headings(target);
      const found = h?.titles.some((t) => {
        const title = t.toLowerCase();
        return title === quoted || title.startsWith(`${quoted} (`);
      });
      if (!found) out.push(`${file}:${i + 1}: ${named} "${m[2]}": ${target} has no such heading`);
    }
  });
}

function checkIssueNumbers(file: string, text: string, out: string[]) {
  text.split('\n').forEach((line, i) => {
    const word = ISSUE_WORD.exec(line);
    if (word) out.push(`${file}:${i + 1}: issue number "${word[0]}": say what the comment means instead`);
    const rest = line.replace(UPSTREAM_REFERENCE, ' ').replace(CSS_COLOUR, ' ');
    for (const m of rest.matchAll(BARE_NUMBER)) {
      if (word && line.includes(`#${m[2]}`)) continue;
      out.push(`${file}:${i + 1}: "#${m[2]}" reads as an issue number: say what it refers to`);
    }
  });
}

function checkOutside(file: string, text: string, out: string[]) {
  text.split('\n').forEach((line, i) => {
    for (const re of OUTSIDE) {
      const m = re.exec(line);
      if (!m) continue;
      out.push(`${file}:${i + 1}: "${m[0]}" points outside the repository`);
      break;
    }
  });
}

/** Every offence, as `file:line: what`. */
export function lint(input: LintInput): string[] {
  const cache = new Map<string, ReturnType<typeof headingsOf> | undefined>();
  const headings = (p: string) => {
    if (!cache.has(p)) {
      const text = input.files.get(p);
      cache.set(p, text === undefined ? undefined : headingsOf(text));
    }
    return cache.get(p);
  };
  const out: string[] = [];
  for (const [file, text] of input.files) {
    if (file.endsWith('.md')) checkLinks(file, text, input, headings, out);
    checkCitations(file, text, headings, out);
    checkReadmeCitations(file, text, headings, out);
    checkOutside(file, text, out);
    if (!ISSUE_EXEMPT.some((re) => re.test(file))) checkIssueNumbers(file, text, out);
  }
  return out;
}

/**
 * Files whose text is not ours: the lock file, and patches quoting upstream sources. Also applied
 * migrations: drizzle records each file's hash, so their text (comments included) stays as it was
 * applied and is never edited; new migrations are written without issue numbers.
 */
const ISSUE_EXEMPT = [/^package-lock\.json$/, /^patches\//, /^drizzle\/[^/]+\.sql$/];

/** Text files the rules read; anything else (images, archives) only has to exist when linked. */
const TEXT_FILE =
  /(\.(md|ts|mts|cts|js|mjs|cjs|json|sql|ya?ml|sh|txt|toml)|(^|\/)Dockerfile|(^|\/)\.env\.example|(^|\/)\.gitignore|(^|\/)\.dockerignore)$/;

/** The repository's files: tracked ones and new ones not ignored (a file about to be committed counts). */
export function repositoryFiles(root: string): string[] {
  try {
    const listed = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
      cwd: root,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    return [...new Set(listed.split('\0').filter(Boolean))].filter((f) => existsSync(path.join(root, f)));
  } catch {
    // Not a git checkout (an unpacked archive): every file outside dependencies and data.
    const out: string[] = [];
    const walk = (dir: string) => {
      for (const entry of readdirSync(path.join(root, dir), { withFileTypes: true })) {
        const rel = dir ? `${dir}/${entry.name}` : entry.name;
        if (entry.isDirectory()) {
          if (!['node_modules', '.git', 'data', 'dist', 'coverage'].includes(entry.name)) walk(rel);
        } else out.push(rel);
      }
    };
    walk('');
    return out;
  }
}

/** Lints the repository at `root`. */
export function lintRepository(root: string): string[] {
  const all = repositoryFiles(root);
  const files = new Map<string, string>();
  for (const f of all)
    if (TEXT_FILE.test(f) && statSync(path.join(root, f)).size < 4 * 1024 * 1024)
      files.set(f, readFileSync(path.join(root, f), 'utf8'));
  const known = new Set(all);
  const dirs = new Set<string>();
  for (const f of all) for (let d = path.posix.dirname(f); d !== '.'; d = path.posix.dirname(d)) dirs.add(d);
  return lint({ files, exists: (p) => known.has(p) || dirs.has(p) });
}
