import Fastify, { type FastifyInstance } from 'fastify';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConsole, buildFiles, initialAssets, isFresh, type BuildResult } from '../../console/build.ts';
import { IMMUTABLE, ownedPrivateDir, privateBuildDir, registerConsole } from '../../src/http/console.ts';
import { createTestApp, type TestContext } from '../helpers/app.ts';

/** The initial load budget of the console (README "Web console"): what index.html loads, gzipped. */
const BUDGET_GZIP = 250 * 1024;

let dir: string;
let build: BuildResult;
let app: FastifyInstance;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'console-build-'));
  build = await buildConsole(path.join(dir, 'dist'));
  app = Fastify();
  await registerConsole(app, { dir: build.dir, built: true });
  await app.ready();
});
afterAll(async () => {
  await app?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('console build', () => {
  it('builds in seconds into index.html and content-hashed assets', async () => {
    expect(build.ms).toBeLessThan(10_000);
    const files = await buildFiles(build.dir);
    expect(files).toContain('index.html');
    const assets = files.filter((f) => f.startsWith('assets/'));
    expect(assets.length).toBeGreaterThanOrEqual(2);
    for (const a of assets) expect(a).toMatch(/^assets\/[\w-]+-[A-Z0-9]{8}\.(js|css)$/);
    expect((await initialAssets(build.dir)).sort()).toEqual([...build.initial].sort());
  });

  it(`keeps the initial load within ${BUDGET_GZIP / 1024} KB gzip, every byte from the server (no CDN)`, async () => {
    const html = await readFile(path.join(build.dir, 'index.html'), 'utf8');
    // Every script, style sheet and image index.html names is a relative path served here.
    for (const m of html.matchAll(/(?:src|href)="([^"]+)"/g)) expect(m[1]).toMatch(/^(?:\.\/assets\/|data:)/);
    let total = gzipSync(html).length;
    for (const f of build.initial) total += gzipSync(await readFile(path.join(build.dir, f)), { level: 9 }).length;
    expect(total).toBeGreaterThan(10 * 1024); // preact, uPlot and the pages are in it
    expect(total).toBeLessThanOrEqual(BUDGET_GZIP);
  });

  it('is fresh for the current sources and stale when the stamp or index.html is off', async () => {
    expect(isFresh(build.dir)).toBe(true);
    const stamp = path.join(build.dir, 'build.json');
    const original = await readFile(stamp, 'utf8');
    await writeFile(stamp, JSON.stringify({ fingerprint: 'something-else' }));
    expect(isFresh(build.dir)).toBe(false);
    await writeFile(stamp, original);
    expect(isFresh(build.dir)).toBe(true);
    expect(isFresh(path.join(dir, 'missing'))).toBe(false);
  });
});

describe('console serving', () => {
  it('redirects /console to /console/', async () => {
    const res = await app.inject('/console');
    expect(res.statusCode).toBe(301);
    expect(res.headers.location).toBe('/console/');
  });

  it('serves index.html at /console/ revalidated on every load, the hashed assets cached for a year', async () => {
    const index = await app.inject('/console/');
    expect(index.statusCode).toBe(200);
    expect(index.headers['content-type']).toMatch(/^text\/html/);
    expect(index.headers['cache-control']).toBe('no-cache');
    expect(index.body).toContain('<div id="app">');
    const [js, css] = [build.initial.find((f) => f.endsWith('.js'))!, build.initial.find((f) => f.endsWith('.css'))!];
    const script = await app.inject(`/console/${js}`);
    expect(script.statusCode).toBe(200);
    expect(script.headers['content-type']).toMatch(/javascript/);
    expect(script.headers['cache-control']).toBe(IMMUTABLE);
    const style = await app.inject(`/console/${css}`);
    expect(style.headers['content-type']).toMatch(/^text\/css/);
    expect(style.headers['cache-control']).toBe(IMMUTABLE);
    // Conditional requests are answered 304.
    const again = await app.inject({
      url: `/console/${js}`,
      headers: { 'if-none-match': String(script.headers.etag) },
    });
    expect(again.statusCode).toBe(304);
  });

  it('serves nothing else from the build directory and nothing outside it', async () => {
    expect((await app.inject('/console/build.json')).statusCode).toBe(404);
    expect((await app.inject('/console/assets/nope-AAAAAAAA.js')).statusCode).toBe(404);
    expect([403, 404]).toContain((await app.inject('/console/../package.json')).statusCode);
    expect([403, 404]).toContain((await app.inject('/console/assets/%2e%2e/%2e%2e/build.json')).statusCode);
  });

  it('answers 503 with a page that says why when the console could not be built; the app still starts', async () => {
    const broken = Fastify();
    await registerConsole(broken, { error: 'esbuild is not installed' });
    await broken.ready();
    for (const url of ['/console/', '/console/assets/main-AAAAAAAA.js']) {
      const res = await broken.inject(url);
      expect(res.statusCode).toBe(503);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.body).toContain('esbuild is not installed');
    }
    expect((await broken.inject('/console')).statusCode).toBe(301);
    await broken.close();
  });
});

describe('console in the server', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestApp();
  });
  afterAll(async () => ctx?.close());

  it('the app serves the console at /console/ (built when missing) and keeps it out of the API routes and OpenAPI', async () => {
    const res = await ctx.app.inject('/console/');
    expect(res.statusCode).toBe(200);
    expect(res.body).toMatch(/<script type="module" src="\.\/assets\/main-[A-Z0-9]{8}\.js">/);
    expect(ctx.app.apiRoutes.some((r) => r.url.startsWith('/console'))).toBe(false);
    const doc = JSON.parse((await ctx.app.inject('/docs/json')).body) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths).some((p) => p.startsWith('/console'))).toBe(false);
  });
});

describe('console build next to running servers', () => {
  // A worker thread polls index.html in a tight loop while the builds run in this thread, so a moment
  // without it (a build deleting or replacing the one being served) is seen.
  async function concurrently(out: string, n: number) {
    const stop = new SharedArrayBuffer(4);
    const w = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads'); const fs = require('node:fs');
       const flag = new Int32Array(workerData.stop); let missing = 0, checks = 0;
       parentPort.postMessage('ready');
       while (Atomics.load(flag, 0) === 0) { checks++; if (!fs.existsSync(workerData.file)) missing++; }
       parentPort.postMessage({ missing, checks });`,
      { eval: true, workerData: { file: path.join(out, 'index.html'), stop } },
    );
    const ready = new Promise((r) => w.once('message', r));
    const done = new Promise<{ missing: number; checks: number }>((resolve) =>
      w.on('message', (m) => m !== 'ready' && resolve(m as { missing: number; checks: number })),
    );
    await ready;
    const results = await Promise.allSettled(Array.from({ length: n }, () => buildConsole(out)));
    Atomics.store(new Int32Array(stop), 0, 1);
    const seen = await done;
    await w.terminate();
    return { results, ...seen };
  }

  it('many builds at once never delete or replace a fresh build that is being served', async () => {
    const out = path.join(dir, 'race-fresh', 'dist');
    await buildConsole(out);
    const before = (await stat(path.join(out, 'index.html'))).ino;
    const { results, missing, checks } = await concurrently(out, 6);
    expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
    expect(checks).toBeGreaterThan(0);
    expect(missing).toBe(0);
    expect((await stat(path.join(out, 'index.html'))).ino).toBe(before); // the very same files, untouched
    expect(await readdir(path.dirname(out))).toEqual(['dist']); // no temporary directories left
  });

  it('many builds at once replace a stale build once and leave one fresh build, nothing else', async () => {
    const out = path.join(dir, 'race-stale', 'dist');
    await buildConsole(out);
    await writeFile(path.join(out, 'build.json'), JSON.stringify({ fingerprint: 'older-sources' }));
    const { results } = await concurrently(out, 6);
    expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
    expect(isFresh(out)).toBe(true);
    expect(await readdir(path.dirname(out))).toEqual(['dist']);
  });
});

describe('console build directory of a read-only install', () => {
  it('is DATA_DIR/console, created for this user only', async () => {
    const data = path.join(dir, 'data-new');
    const out = await privateBuildDir(data);
    expect(out).toBe(path.join(data, 'console', 'dist'));
    const st = await stat(path.join(data, 'console'));
    expect(st.mode & 0o777).toBe(0o700);
    expect(st.uid).toBe(process.getuid!());
  });

  it('is never a directory others can write: a group- or world-writable DATA_DIR/console is not used', async () => {
    const data = path.join(dir, 'data-open');
    await mkdir(path.join(data, 'console', 'dist'), { recursive: true });
    await chmod(path.join(data, 'console'), 0o777);
    // A build planted there (matching stamp and index.html) is not trusted.
    const planted = await buildConsole(path.join(data, 'console', 'dist'));
    expect(isFresh(planted.dir)).toBe(true);
    const out = await privateBuildDir(data);
    expect(out.startsWith(path.join(data, 'console'))).toBe(false);
    expect(path.dirname(out).startsWith(path.join(os.tmpdir(), 'iot-cloud-console-'))).toBe(true);
    const st = await stat(path.dirname(out));
    expect(st.mode & 0o777).toBe(0o700);
    expect(isFresh(out)).toBe(false); // a fresh private directory: nothing planted in it
    await rm(path.dirname(out), { recursive: true, force: true });
  });

  it('without DATA_DIR is a new private temporary directory on every start, never a predictable path', async () => {
    const [a, b] = [await privateBuildDir(undefined), await privateBuildDir(undefined)];
    expect(a).not.toBe(b);
    for (const d of [a, b]) {
      expect(await ownedPrivateDir(path.dirname(d))).toBe(true);
      await rm(path.dirname(d), { recursive: true, force: true });
    }
  });

  it('a directory owned by this user but open to others, or a link, is not private', async () => {
    const open = path.join(dir, 'open');
    await mkdir(open, { mode: 0o700 });
    expect(await ownedPrivateDir(open)).toBe(true);
    await chmod(open, 0o720);
    expect(await ownedPrivateDir(open)).toBe(false);
    await chmod(open, 0o700);
    await symlink(open, path.join(dir, 'link'));
    expect(await ownedPrivateDir(path.join(dir, 'link'))).toBe(false);
  });
});

describe('console security headers', () => {
  it('index.html and the assets forbid framing, foreign scripts and styles, and the Referer', async () => {
    const js = build.initial.find((f) => f.endsWith('.js'))!;
    for (const url of ['/console/', `/console/${js}`]) {
      const res = await app.inject(url);
      expect(res.statusCode).toBe(200);
      const csp = String(res.headers['content-security-policy']);
      expect(csp).toContain("default-src 'self'");
      expect(csp).toContain("img-src 'self' data:");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toContain('unsafe-inline');
      expect(res.headers['x-frame-options']).toBe('DENY');
      expect(res.headers['referrer-policy']).toBe('no-referrer');
      expect(res.headers['x-content-type-options']).toBe('nosniff');
    }
  });

  it('the 503 page carries them too', async () => {
    const broken = Fastify();
    await registerConsole(broken, { error: 'x' });
    const res = await broken.inject('/console/');
    expect(res.headers['x-frame-options']).toBe('DENY');
    expect(String(res.headers['content-security-policy'])).toContain("frame-ancestors 'none'");
    await broken.close();
  });
});
