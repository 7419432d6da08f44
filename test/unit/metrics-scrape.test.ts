import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/metrics/metrics.ts';

/** One sample's value from Prometheus text, by name and labels as written. */
const sample = (text: string, series: string) =>
  text
    .split('\n')
    .find((l) => l.startsWith(series + ' '))
    ?.split(' ')[1];

describe('metrics scrape', () => {
  it('still answers when the database cannot count its connections, with the count unknown', async () => {
    const metrics = createMetrics({ node: 'n1' });
    metrics.watchDatabase({ max: 7, connections: () => new Promise(() => {}) });
    const started = performance.now();
    const text = await metrics.render();
    // Bounded by the collector's own deadline (500 ms), not by the database's connect timeout. prom-client
    // writes NaN as "Nan" (Prometheus parses either).
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(sample(text, 'iot_db_pool_max{node="n1"}')).toBe('7');
    expect(sample(text, 'iot_db_connections{state="active",node="n1"}')).toBe('Nan');
    expect(text).toContain('iot_ingest_pending_values');

    const failing = createMetrics({ node: 'n2' });
    failing.watchDatabase({ max: 7, connections: () => Promise.reject(new Error('database down')) });
    expect(sample(await failing.render(), 'iot_db_connections{state="idle",node="n2"}')).toBe('Nan');
  });

  it('labels a method the API does not answer as other, so random methods add no series', async () => {
    const metrics = createMetrics({ node: 'n3' });
    for (const method of ['PROPFIND', 'M-SEARCH', 'GET']) metrics.httpRequest(method, 'unmatched', 404, 0.001);
    const text = await metrics.render();
    expect(text).toContain('method="other"');
    expect(text).toContain('method="GET"');
    expect(text).not.toContain('PROPFIND');
    expect(text).not.toContain('M-SEARCH');
  });
});
