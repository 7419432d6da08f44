/**
 * The web console at /console/ (README "Web console"): the static build of console/src, built here when it
 * is missing or older than its sources (esbuild, well under a second), served with @fastify/static. Hashed
 * assets are cached for a year (immutable), index.html is revalidated on every load. When the console cannot
 * be built (a read-only install without a build, esbuild missing), the API still starts and /console/
 * answers 503 with a page that says why.
 */
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { access, constants, lstat, mkdir, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buildConsole, CONSOLE_DIST, isFresh } from '../../console/build.ts';

export type ConsoleBuild = { dir: string; built: boolean } | { error: string; cause?: unknown };

let pending: Promise<ConsoleBuild> | undefined;

async function writable(dir: string): Promise<boolean> {
  try {
    await access(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * A directory for the console build that only this server's user can write: `<root>/console` when it is (or
 * can be made) a directory we own with mode 0700, else a fresh private temporary directory. Never a
 * predictable path in a shared temporary directory: another local user could plant a build there, and its
 * script would run on /console/ next to the session token.
 */
export async function privateBuildDir(root: string | undefined): Promise<string> {
  if (root) {
    const dir = path.resolve(root, 'console');
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      if (await ownedPrivateDir(dir)) return path.join(dir, 'dist');
    } catch {
      // not creatable (a read-only DATA_DIR): a temporary directory below
    }
  }
  return path.join(await mkdtemp(path.join(os.tmpdir(), 'iot-cloud-console-')), 'dist');
}

/** Whether `dir` is a real directory (not a link) owned by this process's user and closed to everyone else. */
export async function ownedPrivateDir(dir: string): Promise<boolean> {
  const st = await lstat(dir);
  const uid = process.getuid?.();
  return st.isDirectory() && (uid === undefined || st.uid === uid) && (st.mode & 0o077) === 0;
}

/**
 * A fresh build of the console: console/dist when it is current; else built there, or, when the install is
 * read-only, in a private directory (see privateBuildDir): `DATA_DIR/console` when `dataDir` is given.
 */
export function ensureConsoleBuild(dataDir?: string): Promise<ConsoleBuild> {
  pending ??= (async (): Promise<ConsoleBuild> => {
    try {
      if (isFresh(CONSOLE_DIST)) return { dir: CONSOLE_DIST, built: false };
      const out = (await writable(path.dirname(CONSOLE_DIST))) ? CONSOLE_DIST : await privateBuildDir(dataDir);
      if (out !== CONSOLE_DIST && isFresh(out)) return { dir: out, built: false };
      const r = await buildConsole(out);
      return { dir: r.dir, built: true };
    } catch (e) {
      return { error: (e as Error).message, cause: e };
    }
  })();
  const p = pending;
  // A failed build is tried again by the next app (a test that fixes the sources, a restart).
  void p.then((r) => {
    if ('error' in r && pending === p) pending = undefined;
  });
  return p;
}

const UNAVAILABLE = (reason: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Console unavailable</title></head>
<body><h1>The web console is not available</h1>
<p>The server could not build it: ${reason.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`)}</p>
<p>Build it with <code>node --import tsx console/build.ts</code> and restart the server. The API is not affected.</p>
</body></html>
`;

export const IMMUTABLE = 'public, max-age=31536000, immutable';

/**
 * Sent with every /console/ response: scripts, styles and connections only from this server (the favicon is
 * a data: image; style attributes set from script, as uPlot and the pages do, are not restricted by CSP), no
 * framing by other sites, no Referer leaving the console.
 */
export const CONSOLE_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
};

export async function registerConsole(
  app: FastifyInstance,
  build?: ConsoleBuild,
  opts: { dataDir?: string } = {},
): Promise<void> {
  const b = build ?? (await ensureConsoleBuild(opts.dataDir));
  app.get('/console', { schema: { hide: true } }, (_req, reply) => reply.redirect('/console/', 301));
  if ('error' in b) {
    app.log.warn({ err: b.cause ?? b.error }, 'web console not built: /console/ answers 503');
    const unavailable = (_req: unknown, reply: FastifyReply) =>
      reply
        .code(503)
        .headers(CONSOLE_SECURITY_HEADERS)
        .header('cache-control', 'no-store')
        .type('text/html; charset=utf-8')
        .send(UNAVAILABLE(b.error));
    app.get('/console/', { schema: { hide: true } }, unavailable);
    app.get('/console/*', { schema: { hide: true } }, unavailable);
    return;
  }
  if (b.built) app.log.info({ dir: b.dir }, 'web console built');
  await app.register(fastifyStatic, {
    root: b.dir,
    prefix: '/console/',
    index: ['index.html'],
    cacheControl: false,
    etag: true,
    lastModified: true,
    redirect: false,
    allowedPath: (p) => p === '/' || p === '/index.html' || p.startsWith('/assets/'),
    setHeaders: (reply, file) => {
      const rel = path.relative(b.dir, file).split(path.sep).join('/');
      reply.header('cache-control', rel.startsWith('assets/') ? IMMUTABLE : 'no-cache');
      for (const [k, v] of Object.entries(CONSOLE_SECURITY_HEADERS)) reply.header(k, v);
    },
  });
}
