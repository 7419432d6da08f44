import autocannon from 'autocannon';

export interface LoadOptions {
  url: string;
  token?: string;
  /** Paths requested in turn by every connection (one path = the same request each time). */
  paths: string[];
  durationS: number;
  connections: number;
}

export interface LoadResult {
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  mean: number;
  errors: number;
  non2xx: number;
}

/**
 * One fixed-duration autocannon run. The load generator runs in a worker thread (`workers: 1`) so
 * it does not share the server's event loop; paths are plain objects because functions cannot be
 * handed to a worker.
 */
export async function load(opts: LoadOptions): Promise<LoadResult> {
  const result = await autocannon({
    url: opts.url,
    connections: opts.connections,
    duration: opts.durationS,
    workers: 1,
    headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {},
    requests: opts.paths.map((path) => ({ method: 'GET' as const, path })),
  });
  const seconds = (result.finish.getTime() - result.start.getTime()) / 1000 || opts.durationS;
  return {
    requests: result['2xx'],
    rps: result['2xx'] / seconds,
    p50: result.latency.p50,
    p99: result.latency.p99,
    mean: result.latency.average,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  };
}
