import Fastify, { type FastifyInstance } from 'fastify';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConsole, buildFiles, initialAssets, isFresh, type BuildResult } from '../../console/build.ts';
import { IMMUTABLE, registerConsole } from '../../src/console.ts';
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
    const again = await app.inject({ url: `/console/${js}`, headers: { 'if-none-match': String(script.headers.etag) } });
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
