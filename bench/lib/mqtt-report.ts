import { percentile } from './mqtt-load.ts';
import { MiB, type ConnectLoad, type Measured } from './mqtt-measure.ts';

/**
 * The checks that make the run fail: every device connected and every report acknowledged (and, for
 * our server, answered and counted online); answers what failed, one line each.
 */
export function check(label: string, m: Measured, expectAnswers: boolean, load: ConnectLoad): string[] {
  const N = load.devices;
  const problems: string[] = [];
  if (m.connected < N)
    problems.push(
      `${label}: ${N - m.connected} of ${N} devices did not connect (${[...m.failures].map(([k, v]) => `${v}× ${k}`).join(', ')})`,
    );
  if (m.subscribeFailed) problems.push(`${label}: ${m.subscribeFailed} subscriptions failed`);
  if (m.dropped) problems.push(`${label}: ${m.dropped} connections dropped by the broker during the run`);
  const total = m.run.sent + m.run.warmupSent;
  if (m.run.failed || m.run.unacked || m.run.skipped) {
    problems.push(
      `${label}: of ${total} reports ${m.run.failed} failed, ${m.run.unacked} got no PUBACK within ${load.ackGraceMs / 1000} s, ${m.run.skipped} were skipped (client gone)`,
    );
  }
  if (m.run.sent && m.run.rate < load.rate * 0.95)
    problems.push(
      `${label}: published only ${m.run.rate.toFixed(0)} reports/s of ${load.rate} (the load generator fell behind)`,
    );
  if (expectAnswers) {
    if (m.responsesOk !== m.run.acked) {
      problems.push(
        `${label}: ${m.run.acked} reports acknowledged but ${m.responsesOk} answered {"result":1} and ${m.responsesBad} otherwise` +
          (m.badSamples.length ? ` (e.g. ${m.badSamples.join(' | ')})` : ''),
      );
    }
    if (m.onlineLoaded !== m.connected - m.dropped)
      problems.push(
        `${label}: devices_stat says ${m.onlineLoaded} online while ${m.connected - m.dropped} were connected`,
      );
    if (m.onlineClosed !== 0)
      problems.push(
        `${label}: devices_stat still says ${m.onlineClosed} online ${load.statWaitMs / 1000} s after every client disconnected`,
      );
  }
  if (m.stopKilled) problems.push(`${label}: did not stop cleanly on SIGTERM`);
  if (m.logged.error) problems.push(`${label}: logged ${m.logged.error} errors, e.g. ${m.logged.samples.join(' | ')}`);
  return problems;
}

const fmt = (v: number | undefined, digits = 0) =>
  v === undefined || Number.isNaN(v)
    ? '–'
    : v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const ratio = (a: number, b: number) => (b > 0 && Number.isFinite(a / b) ? (a / b).toFixed(2) : '–');

/** The table of figures, ours next to each bare run, with ours/bare for the headline figures. */
export function printTable(ours: Measured, bares: Measured[], devices: number) {
  const perConn = (m: Measured, key: 'rss' | 'heapUsed' | 'external') =>
    m.connected ? (m.connectedMem[key] - m.idle[key]) / m.connected : Number.NaN;
  const marginal = (m: Measured, key: 'rss' | 'heapUsed') =>
    m.mid && m.connected > m.mid.connected
      ? (m.connectedMem[key] - m.mid.memory[key]) / (m.connected - m.mid.connected)
      : Number.NaN;
  const lat = (m: Measured, p: number) => percentile(m.run.latencies, p);
  const reports = (m: Measured) => Math.max(1, m.run.sent + m.run.warmupSent);
  const perConnected = (m: Measured, ms: number) => ms / Math.max(1, m.connected);
  // label, figure of one run, digits, whether the ratio is a headline figure
  const rows: Array<[string, (m: Measured) => number, number, boolean]> = [
    ['connect rate (connections/s)', (m) => m.connected / (m.connectMs / 1000), 0, true],
    ['connect time p50 (ms)', (m) => m.connectP50, 1, false],
    ['connect time p99 (ms)', (m) => m.connectP99, 1, false],
    ['subscribe (s, all devices)', (m) => m.subscribeMs / 1000, 2, false],
    ['RSS idle (MiB)', (m) => m.idle.rss / MiB, 1, false],
    ['RSS connected (MiB)', (m) => m.connectedMem.rss / MiB, 1, false],
    ['RSS per connection (KiB)', (m) => perConn(m, 'rss') / 1024, 1, true],
    ['  JS heap per connection (KiB)', (m) => perConn(m, 'heapUsed') / 1024, 1, true],
    ['  external per connection (KiB)', (m) => perConn(m, 'external') / 1024, 1, false],
    ['RSS per connection, 2nd half (KiB)', (m) => marginal(m, 'rss') / 1024, 1, true],
    ['  JS heap per connection, 2nd half (KiB)', (m) => marginal(m, 'heapUsed') / 1024, 1, true],
    ['RSS after reports (MiB)', (m) => m.loaded.rss / MiB, 1, false],
    ['RSS peak (MiB)', (m) => m.loaded.peak / MiB, 1, false],
    ['broker CPU per connection (ms)', (m) => perConnected(m, m.cpuConnectMs), 3, true],
    ['database CPU per connection (ms)', (m) => perConnected(m, m.dbConnectMs), 3, false],
    ['bench CPU per connection (ms)', (m) => perConnected(m, m.benchCpuConnectMs), 3, false],
    ['reports/s published', (m) => m.run.rate, 0, false],
    ['report latency p50 (ms)', (m) => lat(m, 50), 2, true],
    ['report latency p99 (ms)', (m) => lat(m, 99), 2, true],
    ['report latency max (ms)', (m) => lat(m, 100), 2, false],
    ['broker CPU per report (ms)', (m) => m.cpuReportMs / reports(m), 3, true],
    ['database CPU per report (ms)', (m) => m.dbReportMs / reports(m), 3, false],
    ['broker CPU busy while reporting (%)', (m) => (100 * m.cpuReportMs) / m.reportWallMs, 0, false],
    ['other processes, connecting (% of CPUs)', (m) => m.othersConnect, 0, false],
    ['other processes, reporting (% of CPUs)', (m) => m.othersReport, 0, false],
  ];
  const w = [40, 11, ...bares.map(() => 11), 11];
  const line = (cells: string[]) =>
    console.log(cells.map((c, i) => (i === 0 ? c.padEnd(w[0]!) : c.padStart(w[i]!))).join('  '));
  console.log('');
  line(['', 'ours', ...bares.map((_, i) => `bare #${i + 1}`), 'ours/bare']);
  line(w.map((n) => '-'.repeat(n)));
  for (const [label, figure, digits, headline] of rows) {
    const a = figure(ours);
    const b = bares.map(figure);
    // The baseline is the mean of the bare runs before and after ours (noise of a shared machine).
    const mean = b.reduce((x, y) => x + y, 0) / b.length;
    line([label, fmt(a, digits), ...b.map((v) => fmt(v, digits)), headline ? ratio(a, mean) : '']);
  }
  console.log('');
  console.log(
    `ours: ${ours.connected}/${devices} connected, ${ours.run.acked}/${reports(ours)} reports acknowledged, ${ours.responsesOk} answered {"result":1}, ` +
      `devices_stat online ${fmt(ours.onlineLoaded)} while connected and ${fmt(ours.onlineClosed)} after disconnecting, ${ours.logged.warn} warnings / ${ours.logged.error} errors logged`,
  );
  for (const [i, bare] of bares.entries())
    console.log(
      `bare #${i + 1}: ${bare.connected}/${devices} connected, ${bare.run.acked}/${reports(bare)} reports acknowledged`,
    );
  console.log('ours/bare: ours over the mean of the bare runs (before and after ours)');
}
