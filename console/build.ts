/**
 * Builds the web console (console/src) into static files: `index.html` and content-hashed assets under
 * `assets/`, served at /console/ by src/http/console.ts. esbuild bundles and minifies in well under a second, so
 * the server builds at start when the output is missing or older than the sources (README "Web console").
 *
 * `node --import tsx console/build.ts` builds once (the Docker image does this at image build time).
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** console/ of the repository, from here (tsx) or from the compiled server's dist/console/ (npm run build). */
const HERE = path.dirname(fileURLToPath(import.meta.url));
export const CONSOLE_ROOT =
  [HERE, path.resolve(HERE, '../../console')].find((dir) => existsSync(path.join(dir, 'build.ts'))) ?? HERE;
export const CONSOLE_SRC = path.join(CONSOLE_ROOT, 'src');
export const CONSOLE_DIST = path.join(CONSOLE_ROOT, 'dist');
const STAMP = 'build.json';

export interface BuildResult {
  dir: string;
  /** Files index.html loads, relative to dir. */
  initial: string[];
  ms: number;
}

function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSyncSorted(d)) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk(dir);
  return out;
}

function readdirSyncSorted(d: string) {
  // Sorted so the fingerprint does not depend on the file system's order.
  return readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name));
}

/** A fingerprint of everything the build reads: the sources, this script and the versions of the libraries. */
export function sourceFingerprint(): string {
  const h = createHash('sha256');
  for (const f of [...listFiles(CONSOLE_SRC), path.join(CONSOLE_ROOT, 'build.ts')]) {
    h.update(path.relative(CONSOLE_ROOT, f));
    h.update(readFileSync(f));
  }
  for (const pkg of ['esbuild', 'preact', 'uplot']) {
    try {
      h.update(readFileSync(path.join(CONSOLE_ROOT, '..', 'node_modules', pkg, 'package.json')));
    } catch {
      h.update(`${pkg}:missing`);
    }
  }
  return h.digest('hex').slice(0, 16);
}

/** Whether `dir` holds a build of the current sources. */
export function isFresh(dir = CONSOLE_DIST): boolean {
  try {
    const stamp = JSON.parse(readFileSync(path.join(dir, STAMP), 'utf8')) as { fingerprint?: string };
    return stamp.fingerprint === sourceFingerprint() && existsSync(path.join(dir, 'index.html'));
  } catch {
    return false;
  }
}

const FAVICON =
  "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Ccircle cx='8' cy='8' r='6' fill='%232563eb'/%3E%3C/svg%3E";

function indexHtml(js: string, css: string[]): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>IoT Cloud console</title>
<link rel="icon" href="${FAVICON}">
${css.map((c) => `<link rel="stylesheet" href="./${c}">`).join('\n')}
<script type="module" src="./${js}"></script>
</head>
<body>
<div id="app"></div>
<noscript>The console needs JavaScript.</noscript>
</body>
</html>
`;
}

/**
 * Puts the complete build `tmp` at `outDir` without ever removing a fresh build there: another process (a
 * second server, a parallel test worker) may have finished the same build first and already serve it. A
 * missing `outDir` is filled by one rename; a stale one is renamed aside first and removed after.
 */
async function swapIn(tmp: string, outDir: string): Promise<void> {
  const drop = () => rm(tmp, { recursive: true, force: true });
  if (isFresh(outDir)) return drop();
  try {
    await rename(tmp, outDir); // atomic; fails when outDir exists and is not empty
    return;
  } catch (e) {
    if (isFresh(outDir)) return drop();
    if (!['ENOTEMPTY', 'EEXIST'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
  }
  const aside = `${outDir}.old-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await rename(outDir, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; // another builder moved it aside already
  }
  try {
    await rename(tmp, outDir);
  } catch (e) {
    if (!isFresh(outDir)) throw e;
    await drop(); // another builder put the same build there first
  }
  await rm(aside, { recursive: true, force: true });
}

/** Builds into `outDir` (default console/dist); a fresh build already there is kept, a stale one replaced. */
export async function buildConsole(outDir = CONSOLE_DIST): Promise<BuildResult> {
  const started = performance.now();
  const { build } = await import('esbuild');
  const fingerprint = sourceFingerprint();
  const tmp = `${outDir}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    const result = await build({
      entryPoints: { main: path.join(CONSOLE_SRC, 'main.tsx') },
      bundle: true,
      minify: true,
      format: 'esm',
      target: ['es2022', 'chrome110', 'firefox110', 'safari16'],
      outdir: path.join(tmp, 'assets'),
      entryNames: '[name]-[hash]',
      assetNames: '[name]-[hash]',
      jsx: 'automatic',
      jsxImportSource: 'preact',
      define: { 'process.env.NODE_ENV': '"production"' },
      legalComments: 'none',
      metafile: true,
      logLevel: 'silent',
      absWorkingDir: CONSOLE_ROOT,
    });
    const outputs = Object.keys(result.metafile.outputs).map((f) =>
      path.relative(tmp, path.resolve(CONSOLE_ROOT, f)).split(path.sep).join('/'),
    );
    const js = outputs.find((f) => f.endsWith('.js'));
    const css = outputs.filter((f) => f.endsWith('.css'));
    if (!js) throw new Error('console build produced no JavaScript');
    await writeFile(path.join(tmp, 'index.html'), indexHtml(js, css));
    await writeFile(path.join(tmp, STAMP), JSON.stringify({ fingerprint, built: new Date().toISOString() }) + '\n');
    await swapIn(tmp, outDir);
    return { dir: outDir, initial: [js, ...css], ms: Math.round(performance.now() - started) };
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** The files index.html loads (scripts and style sheets it names), relative to `dir`. */
export async function initialAssets(dir = CONSOLE_DIST): Promise<string[]> {
  const html = await readFile(path.join(dir, 'index.html'), 'utf8');
  return [...html.matchAll(/(?:src|href)="\.\/([^"]+)"/g)].map((m) => m[1] as string);
}

/** Every file of a build, relative to `dir`. */
export async function buildFiles(dir = CONSOLE_DIST): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) out.push(path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join('/'));
  }
  return out.sort();
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const r = await buildConsole();
  console.log(`console built in ${r.ms} ms: ${r.initial.join(', ')}`);
}
