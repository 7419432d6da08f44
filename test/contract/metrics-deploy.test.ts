import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { configSchema } from '../../src/config.ts';
import { METRIC_NAMES } from '../../src/metrics/metrics.ts';

/**
 * The monitoring profile (README "Monitoring", docs/metrics.md): Prometheus and Grafana as the `metrics` profile of
 * docker-compose.yml and docker-compose.cluster.yml, deploy/prometheus/*.yml and deploy/grafana/**. Docker is not
 * needed: the files are read and checked against each other, src/config.ts and the metric names the server
 * exports (METRIC_NAMES of src/metrics/metrics.ts, plus prom-client's default metrics).
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

interface Service {
  image?: string;
  profiles?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  secrets?: Array<string | { source: string; target?: string }>;
  depends_on?: string[] | Record<string, unknown>;
}
interface Compose {
  services: Record<string, Service>;
  secrets?: Record<string, { environment?: string; file?: string }>;
  volumes?: Record<string, unknown>;
}

function yamlFile<T>(file: string): T {
  const doc = parseDocument(read(file), { merge: true, uniqueKeys: true, prettyErrors: true });
  expect(
    doc.errors.map((e) => e.message),
    file,
  ).toEqual([]);
  expect(
    doc.warnings.map((e) => e.message),
    file,
  ).toEqual([]);
  return doc.toJS({ maxAliasCount: 100 }) as T;
}

/** `./deploy/x:/etc/y:ro` → the host path of the volume mounted at `target` (relative to the repository). */
function mountOf(service: Service, target: string): string | undefined {
  const v = service.volumes?.find((m) => m.split(':')[1] === target);
  return v?.split(':')[0]?.replace(/^\.\//, '');
}

/** The container path of each secret a service gets (Compose: /run/secrets/<name> unless a target is given). */
function secretFiles(compose: Compose, service: Service): Map<string, string | undefined> {
  const files = new Map<string, string | undefined>();
  for (const s of service.secrets ?? []) {
    const source = typeof s === 'string' ? s : s.source;
    const target = typeof s === 'string' ? undefined : s.target;
    files.set(
      target?.startsWith('/') ? target : `/run/secrets/${target ?? source}`,
      compose.secrets?.[source]?.environment,
    );
  }
  return files;
}

/** An image with an exact release tag (`name:v1.2.3`), not a moving one (`latest`, `11`, `11.3`). */
const PINNED = /^[a-z0-9./-]+:v?\d+\.\d+\.\d+$/;

/** The names of prom-client's default metrics (collectDefaultMetrics), as the server's registry has them. */
async function defaultMetricNames(): Promise<string[]> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return (await registry.getMetricsAsJSON()).map((m) => m.name);
}

/** Words of PromQL that are neither metric nor function names. */
const PROMQL_WORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);
/** Keywords followed by a list of label names in parentheses. */
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

/**
 * The metric selectors of a PromQL expression: each metric name with its label matchers (`''` when it has none).
 * Strings, range and subquery brackets, Grafana variables, numbers (durations such as 5m too), grouping clauses and
 * function names are skipped.
 */
function selectorsOf(expr: string): Array<{ name: string; matchers: string }> {
  const out: Array<{ name: string; matchers: string }> = [];
  let i = 0;
  /** Index after the string starting at `at` (a quote). */
  const skipString = (at: number) => {
    const q = expr[at];
    let j = at + 1;
    while (j < expr.length && expr[j] !== q) j += expr[j] === '\\' ? 2 : 1;
    return j + 1;
  };
  /** Index after the bracket closing the one at `at`, strings inside skipped. */
  const skipTo = (at: number, close: string) => {
    let j = at + 1;
    while (j < expr.length && expr[j] !== close) j = /["'`]/.test(expr[j]!) ? skipString(j) : j + 1;
    return j + 1;
  };
  const ws = (at: number) => {
    while (at < expr.length && /\s/.test(expr[at]!)) at++;
    return at;
  };
  while (i < expr.length) {
    const c = expr[i]!;
    if (/["'`]/.test(c)) i = skipString(i);
    else if (c === '[') i = skipTo(i, ']');
    else if (c === '{')
      i = skipTo(i, '}'); // a selector without a metric name
    else if (c === '$')
      i = /^\$\{/.test(expr.slice(i)) ? skipTo(i + 1, '}') : i + (/^\$\w*/.exec(expr.slice(i))![0].length || 1);
    else if (/[0-9.]/.test(c)) i += /^[0-9.][0-9A-Za-z._]*/.exec(expr.slice(i))![0].length;
    else if (/[A-Za-z_:]/.test(c)) {
      const name = /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(expr.slice(i))![0];
      const next = ws(i + name.length);
      if (GROUPING.has(name.toLowerCase())) i = expr[next] === '(' ? skipTo(next, ')') : next;
      else if (
        expr[next] === '(' ||
        PROMQL_WORDS.has(name.toLowerCase()) ||
        // An aggregation with its grouping first: `sum by (node) (…)`.
        /^(by|without)\s*\(/i.test(expr.slice(next))
      )
        i = next;
      else if (expr[next] === '{') {
        const after = skipTo(next, '}');
        out.push({ name, matchers: expr.slice(next, after) });
        i = after;
      } else {
        out.push({ name, matchers: '' });
        i = next;
      }
    } else i++;
  }
  return out;
}

interface Target {
  refId?: string;
  expr?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id?: number;
  type?: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  query?: string | { query?: string };
  definition?: string;
  datasource?: { type?: string; uid?: string };
  current?: { value?: unknown };
}
interface Dashboard {
  uid?: string;
  title?: string;
  schemaVersion?: number;
  templating?: { list?: Variable[] };
  panels?: Panel[];
}

const dashboardFiles = readdirSync(path.join(ROOT, 'deploy/grafana/dashboards')).filter((f) => f.endsWith('.json'));
const dashboards = dashboardFiles.map(
  (f) => [f, JSON.parse(read(`deploy/grafana/dashboards/${f}`)) as Dashboard] as const,
);
/** Every panel, those inside collapsed rows too. */
const allPanels = (d: Dashboard) => (d.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]);

describe('PromQL selectors (the helper of the dashboard checks)', () => {
  it('finds metric names with their matchers, and skips functions, grouping labels, strings, variables and numbers', () => {
    expect(
      selectorsOf(
        'topk(10, histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{node=~"$node", x="by(y} c"}[$__rate_interval])))) ' +
          '/ on (node) group_left b offset 5m + 1e3 * sum without(x) (c) > bool $threshold',
      ),
    ).toEqual([
      { name: 'a_bucket', matchers: '{node=~"$node", x="by(y} c"}' },
      { name: 'b', matchers: '' },
      { name: 'c', matchers: '' },
    ]);
  });
});

for (const [composeFile, prometheusFile, appServices] of [
  ['docker-compose.yml', 'deploy/prometheus/prometheus.yml', ['app']],
  ['docker-compose.cluster.yml', 'deploy/prometheus/prometheus.cluster.yml', ['app-1', 'app-2', 'app-3']],
] as const) {
  describe(`${composeFile}: the "metrics" profile`, () => {
    const compose = yamlFile<Compose>(composeFile);
    const services = compose.services;

    it('runs Prometheus and Grafana only with --profile metrics, from pinned images; nothing else changes profile', () => {
      const profiled = Object.keys(services).filter((n) => services[n]!.profiles !== undefined);
      expect(profiled.sort()).toEqual(['grafana', 'prometheus']);
      for (const name of profiled) {
        expect(services[name]!.profiles, name).toEqual(['metrics']);
        expect(services[name]!.image, name).toMatch(PINNED);
      }
      expect(services.prometheus!.image).toMatch(/^prom\/prometheus:/);
      expect(services.grafana!.image).toMatch(/^grafana\/grafana:/);
      // The default `docker compose up` does not need them.
      for (const name of Object.keys(services).filter((n) => !profiled.includes(n))) {
        const deps = services[name]!.depends_on;
        const names = Array.isArray(deps) ? deps : Object.keys(deps ?? {});
        expect(
          names.filter((d) => profiled.includes(d)),
          name,
        ).toEqual([]);
      }
    });

    it('gives every app node METRICS_TOKEN from the environment, empty (metrics off) by default', () => {
      expect(Object.keys(configSchema.in.shape)).toContain('METRICS_TOKEN');
      for (const name of appServices)
        expect(services[name]!.environment?.METRICS_TOKEN, name).toBe('${METRICS_TOKEN:-}');
    });

    it(`scrapes /metrics of ${appServices.join(', ')} on the HTTP port with the bearer token from a file`, () => {
      const prometheus = services.prometheus!;
      expect(mountOf(prometheus, '/etc/prometheus/prometheus.yml')).toBe(prometheusFile);
      const config = yamlFile<{
        global?: { scrape_interval?: string };
        scrape_configs?: Array<{
          job_name?: string;
          scheme?: string;
          metrics_path?: string;
          authorization?: { type?: string; credentials?: string; credentials_file?: string };
          bearer_token?: string;
          static_configs?: Array<{ targets?: string[] }>;
        }>;
      }>(prometheusFile);
      const jobs = config.scrape_configs ?? [];
      expect(jobs).toHaveLength(1);
      const job = jobs[0]!;
      expect(job.scheme ?? 'http').toBe('http');
      expect(job.metrics_path ?? '/metrics').toBe('/metrics');
      expect(job.static_configs?.flatMap((s) => s.targets ?? []).sort()).toEqual(appServices.map((n) => `${n}:8080`));
      for (const name of appServices) expect(services[name]!.environment?.HTTP_PORT, name).toBe('8080');
      // Bearer (the default type), read from a file: never a token written into the configuration.
      expect(job.authorization?.type ?? 'Bearer').toBe('Bearer');
      expect(job.authorization?.credentials).toBeUndefined();
      expect(job.bearer_token).toBeUndefined();
      const file = job.authorization?.credentials_file ?? '';
      expect(secretFiles(compose, prometheus).get(file), `${file} is a secret made from METRICS_TOKEN`).toBe(
        'METRICS_TOKEN',
      );
    });

    it('provisions Grafana with the Prometheus datasource and the dashboards, read-only visitors, admin password from a file', () => {
      const grafana = services.grafana!;
      const provisioning = mountOf(grafana, '/etc/grafana/provisioning');
      expect(provisioning).toBe('deploy/grafana/provisioning');
      const datasources = yamlFile<{ datasources?: Array<{ uid?: string; type?: string; url?: string }> }>(
        `${provisioning}/datasources/prometheus.yml`,
      ).datasources;
      expect(datasources).toHaveLength(1);
      expect(datasources![0]!.type).toBe('prometheus');
      expect(new URL(datasources![0]!.url!).host).toBe('prometheus:9090');
      const providers = yamlFile<{ providers?: Array<{ type?: string; options?: { path?: string } }> }>(
        `${provisioning}/dashboards/iot-cloud.yml`,
      ).providers;
      expect(providers).toHaveLength(1);
      expect(providers![0]!.type).toBe('file');
      expect(mountOf(grafana, providers![0]!.options!.path!)).toBe('deploy/grafana/dashboards');
      // Each dashboard's data source variable defaults to the provisioned datasource.
      for (const [file, d] of dashboards) {
        const ds = d.templating?.list?.find((v) => v.type === 'datasource');
        expect(ds?.current?.value, file).toBe(datasources![0]!.uid);
      }
      const env = grafana.environment ?? {};
      expect(env.GF_AUTH_ANONYMOUS_ENABLED).toBe('true');
      expect(env.GF_AUTH_ANONYMOUS_ORG_ROLE).toBe('Viewer');
      expect(env.GF_SECURITY_ADMIN_PASSWORD).toBeUndefined();
      expect(secretFiles(compose, grafana).get(env.GF_SECURITY_ADMIN_PASSWORD__FILE ?? '')).toBe(
        'GRAFANA_ADMIN_PASSWORD',
      );
      expect(grafana.ports?.map((p) => p.split(':').at(-1))).toEqual(['3000']);
      const home = env.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH;
      expect(dashboardFiles.map((f) => `${providers![0]!.options!.path}/${f}`)).toContain(home);
    });
  });
}

describe('deploy/grafana/dashboards', () => {
  it('holds at least one dashboard', () => {
    expect(dashboardFiles.length).toBeGreaterThan(0);
  });

  it("shows every one of the server's own metrics somewhere", () => {
    const shown = new Set(
      dashboards.flatMap(([, d]) =>
        allPanels(d).flatMap((p) =>
          (p.targets ?? []).flatMap((t) =>
            selectorsOf(t.expr ?? '').map((s) => s.name.replace(/_(bucket|sum|count)$/, '')),
          ),
        ),
      ),
    );
    expect(METRIC_NAMES.filter((n) => !shown.has(n))).toEqual([]);
  });

  for (const [file, d] of dashboards) {
    describe(file, () => {
      const variables = d.templating?.list ?? [];
      const panels = allPanels(d);

      it('is a current dashboard (schemaVersion 36+) with a data source variable and a node variable', () => {
        expect(d.uid).toBeTruthy();
        expect(d.schemaVersion).toBeGreaterThanOrEqual(36);
        const ds = variables.find((v) => v.name === 'DS_PROMETHEUS');
        expect(ds?.type).toBe('datasource');
        expect(ds?.query).toBe('prometheus');
        const node = variables.find((v) => v.name === 'node');
        expect(node?.type).toBe('query');
        expect(node?.datasource?.uid).toBe('${DS_PROMETHEUS}');
        const q = typeof node?.query === 'string' ? node.query : node?.query?.query;
        expect(q).toMatch(/^label_values\(([A-Za-z_:][A-Za-z0-9_:]*\s*,\s*)?node\)$/);
      });

      it('gives every panel a unique id, the Prometheus data source and at least one query', () => {
        const ids = panels.map((p) => p.id);
        expect(ids.every((i) => Number.isInteger(i))).toBe(true);
        expect(new Set(ids).size).toBe(ids.length);
        for (const p of panels.filter((p) => p.type !== 'row')) {
          expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${DS_PROMETHEUS}' });
          expect(p.targets?.length, p.title).toBeGreaterThan(0);
          for (const t of p.targets!) {
            expect(t.datasource ?? p.datasource, `${p.title} ${t.refId}`).toEqual(p.datasource);
            expect(t.expr, `${p.title} ${t.refId}`).toBeTruthy();
          }
          expect(new Set(p.targets!.map((t) => t.refId)).size, p.title).toBe(p.targets!.length);
        }
      });

      it('queries only metrics the server exports, each restricted to the selected nodes', async () => {
        const known = new Set([...METRIC_NAMES, ...(await defaultMetricNames())]);
        const exported = (name: string) =>
          known.has(name) || (/_(bucket|sum|count)$/.test(name) && known.has(name.replace(/_(bucket|sum|count)$/, '')));
        const unknown: string[] = [];
        const unfiltered: string[] = [];
        for (const p of panels)
          for (const t of p.targets ?? [])
            for (const s of selectorsOf(t.expr ?? '')) {
              if (!exported(s.name)) unknown.push(`${p.title}: ${s.name}`);
              if (!/\bnode\s*=~\s*"\$node"/.test(s.matchers)) unfiltered.push(`${p.title}: ${s.name}`);
            }
        expect(unknown).toEqual([]);
        expect(unfiltered).toEqual([]);
        expect(panels.flatMap((p) => p.targets ?? []).length).toBeGreaterThan(0);
      });
    });
  }
});
