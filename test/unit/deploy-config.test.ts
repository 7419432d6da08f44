import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { configSchema, TLS_DEFAULT_PORTS } from '../../src/config.ts';

/**
 * The deployment files agree with src/config.ts: .env.example names every setting with its real
 * default, and docker-compose.yml is valid YAML that hands all of .env to the app (README "Docker
 * (with TimescaleDB)", docs/operations.md).
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

/** Settings of .env.example that are not the server's: docker-compose.yml's own. */
const COMPOSE_ONLY = ['POSTGRES_PASSWORD', 'PUBLISH_HTTP_PORT', 'PUBLISH_MQTT_PORT', 'PUBLISH_TCP_PORT'];

const settings = Object.keys(configSchema.in.shape);
// The TLS ports are "off" without certificate files; .env.example shows the ports they take with them.
const defaults: Record<string, unknown> = { ...configSchema.parse({}), ...TLS_DEFAULT_PORTS };

/** `NAME=value` and `# NAME=value` lines (a commented line shows the default). */
function envExample(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const line of read('.env.example').split('\n')) {
    const m = /^(?:#\s*)?([A-Z][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (!m) continue;
    const [, name, value] = m as unknown as [string, string, string];
    found.set(name, [...(found.get(name) ?? []), value.trim()]);
  }
  return found;
}

describe('.env.example', () => {
  const example = envExample();

  it('names every setting of src/config.ts', () => {
    expect(settings.filter((name) => !example.has(name))).toEqual([]);
  });

  it("names nothing the server does not read (besides the compose file's own)", () => {
    expect([...example.keys()].filter((name) => !settings.includes(name) && !COMPOSE_ONLY.includes(name))).toEqual([]);
  });

  it('shows each default as src/config.ts has it', () => {
    const wrong: string[] = [];
    for (const name of settings) {
      const value = defaults[name];
      // No default (secrets, DATABASE_URL, an empty list): the line shows an example or nothing.
      if (value === undefined || value === '') continue;
      const shown = example.get(name) ?? [];
      if (!shown.includes(String(value)))
        wrong.push(`${name}: .env.example ${JSON.stringify(shown)}, src/config.ts ${String(value)}`);
    }
    expect(wrong).toEqual([]);
  });
});

describe('docker-compose.yml', () => {
  const doc = parseDocument(read('docker-compose.yml'), { uniqueKeys: true, prettyErrors: true });
  const compose = doc.toJS() as {
    services: Record<
      string,
      { image?: string; env_file?: unknown; environment?: Record<string, string>; ports?: string[]; volumes?: string[] }
    >;
  };

  it('is valid YAML without duplicate keys', () => {
    expect(doc.errors.map((e) => e.message)).toEqual([]);
    expect(doc.warnings.map((e) => e.message)).toEqual([]);
  });

  it('hands the whole .env to the app and pins what the container needs', () => {
    const app = compose.services.app;
    expect(app?.env_file).toEqual([{ path: '.env', required: false }]);
    const env = app?.environment ?? {};
    // Names the server does not know would be silently ignored.
    expect(Object.keys(env).filter((name) => !settings.includes(name))).toEqual([]);
    // The container ports of the published mappings are the ones the app listens on, whatever .env says.
    const containerPorts = (app?.ports ?? []).map((p) => p.split(':').at(-1));
    expect(containerPorts).toEqual([env.HTTP_PORT, env.MQTT_PORT, env.TCP_PORT]);
    expect(app?.volumes).toContain(`app-data:${env.DATA_DIR}`);
    expect(env.DATABASE_URL).toMatch(/@db:5432\//);
    expect(env.JWT_SECRET).toMatch(/^\$\{JWT_SECRET:\?/);
  });

  it('runs a fixed TimescaleDB release, not a moving tag', () => {
    expect(compose.services.db?.image).toMatch(/^timescale\/timescaledb:\d+\.\d+\.\d+-pg\d+$/);
  });
});

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');
  const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
  const build = JSON.parse(read('tsconfig.build.json')) as {
    compilerOptions: { outDir: string; rootDir: string };
    include: string[];
  };
  /** npm start's command line without its TypeScript loader: `node <flags> <entry>.ts`. */
  const start = scripts.start!.split(' ');
  const loader = start.indexOf('--import');
  const startWithoutLoader = loader >= 0 ? [...start.slice(0, loader), ...start.slice(loader + 2)] : start;
  const entry = startWithoutLoader.at(-1)!;
  /** Where `npm run build` puts that entry (tsconfig.build.json). */
  const compiledEntry = path.posix.join(
    build.compilerOptions.outDir,
    path.posix.relative(build.compilerOptions.rootDir, entry).replace(/\.ts$/, '.js'),
  );

  it("runs the compiled server with npm start's Node flags, as node itself so that docker stop's SIGTERM reaches it", () => {
    const cmd = /^CMD (\[.*\])$/m.exec(dockerfile)?.[1];
    expect(start[0]).toBe('node');
    expect(JSON.parse(cmd ?? 'null')).toEqual([...startWithoutLoader.slice(0, -1), compiledEntry]);
    expect(compiledEntry).toBe('dist/src/main.js');
  });

  it('builds that entry: npm run build compiles src/main.ts into dist/, in the build stage', () => {
    expect(scripts.build).toBe('tsc -p tsconfig.build.json');
    expect(build.include).toContain(entry.split('/')[0]);
    expect(dockerfile).toMatch(/^FROM \S+ AS build$/m);
    expect(dockerfile).toMatch(/^RUN npm run build\b/m);
    expect(dockerfile).toMatch(/^COPY --from=build \/app\/dist \.\/dist$/m);
  });
});
