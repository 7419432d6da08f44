/**
 * Layer boundaries of docs/architecture.md §1, checked by `npm run lint` (dependency-cruiser).
 * A rule here is a promise about the code's shape: the database layer knows nothing of the domain, the
 * domain nothing of HTTP or the device transports, and no module imports itself back through a cycle.
 */
module.exports = {
  forbidden: [
    {
      name: 'no-cycle',
      severity: 'error',
      comment: 'Import cycles hide the order modules start in.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'db-not-domain',
      severity: 'error',
      comment: 'Repositories and schema do not import services.',
      from: { path: '^src/db/' },
      to: { path: '^src/(domain|http|composition|control|cli|cluster)/|^mqtt-broker/(?!protocol/)' },
    },
    {
      name: 'domain-not-cluster',
      severity: 'error',
      comment:
        'Services do not know NATS: in cluster mode they are given adapters from src/cluster/ by the composition (docs/cluster.md).',
      from: { path: '^src/domain/' },
      to: { path: '^src/cluster/|^@nats-io/' },
    },
    {
      name: 'metrics-through-port',
      severity: 'error',
      comment:
        'The domain and the device edge count through the MetricsPort of src/domain/metrics-port.ts; only the composition, main.ts and src/http/ see src/metrics/ and prom-client (docs/metrics.md).',
      from: { path: '^src/(domain|db|cluster|lib)/|^mqtt-broker/' },
      to: { path: '^src/metrics/|(^|/)prom-client/' },
    },
    {
      name: 'cluster-not-edges',
      severity: 'error',
      comment: 'The cluster adapters implement domain ports; they know neither HTTP nor the device transports.',
      from: { path: '^src/cluster/' },
      to: { path: '^src/(http|composition|control|cli|tls)/|^src/(app|main)\\.ts$|^mqtt-broker/(?!protocol/)' },
    },
    {
      name: 'domain-not-edges',
      severity: 'error',
      comment:
        'Services know nothing of HTTP, the control socket, the TLS listeners, the entry points or the device transports (the wire formats of mqtt-broker/protocol/ are a leaf anyone may use; src/metrics/ is closed by metrics-through-port).',
      from: { path: '^src/domain/' },
      to: { path: '^src/(http|composition|control|cli|tls)/|^src/(app|main)\\.ts$|^mqtt-broker/(?!protocol/)' },
    },
    {
      name: 'lib-is-leaf',
      severity: 'error',
      comment: 'src/lib holds helpers that import no layer.',
      from: { path: '^src/lib/' },
      to: { path: '^src/(db|domain|http|composition|control|cli|cluster)/|^mqtt-broker/' },
    },
    {
      name: 'edge-through-port',
      severity: 'error',
      comment: 'The device transports reach the server through mqtt-broker/core/port.ts only.',
      from: { path: '^mqtt-broker/', pathNot: '^mqtt-broker/core/port\\.ts$' },
      to: { path: '^src/', pathNot: '^src/lib/' },
    },
    {
      name: 'src-not-edge',
      severity: 'error',
      comment:
        "Only the composition root (src/composition/, src/main.ts) and the configuration (src/config.ts, for the transports' defaults) know the device transports; the rest of src shares only the wire formats of mqtt-broker/protocol/.",
      from: { path: '^src/', pathNot: '^src/composition/|^src/main\\.ts$|^src/config\\.ts$' },
      to: { path: '^mqtt-broker/(?!protocol/)' },
    },
    {
      name: 'protocol-is-leaf',
      severity: 'error',
      comment:
        'mqtt-broker/protocol/ (topics, wire codecs) is shared with the simulator and the domain: it imports neither.',
      from: { path: '^mqtt-broker/protocol/' },
      to: { path: '^src/(?!lib/)|^mqtt-broker/(?!protocol/)|^simulator/' },
    },
    {
      name: 'simulator-protocol-only',
      severity: 'error',
      comment: 'The simulator speaks the public protocol: it shares only mqtt-broker/protocol/.',
      from: { path: '^simulator/' },
      to: { path: '^src/|^mqtt-broker/(?!protocol/)' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
