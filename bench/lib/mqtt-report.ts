import { percentile } from './mqtt-load.ts';
import { MiB, type ConnectLoad, type Measured } from './mqtt-measure.ts';
import type { Memory } from './mqtt-proc.ts';

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

/**
 * What the device edge must reach against bare Aedes in the same run (bench/README.md, bench/mqtt-connect
 * "Goals"): a reconnect storm at 0.8 of bare's connect rate or better, at most 1.2× bare's RSS per connection
 * (without the young generation: rssWithoutYoung), and reports answered with a p99 of 10 ms at most while the ingest
 * keeps up with the rate (acknowledged reports per second at least 0.95 of `--rate`, the load generator's own bar).
 */
export const GOALS = {
  connectRatio: 0.8,
  rssRatio: 1.2,
  reportP99Ms: 10,
  throughputShare: 0.95,
  /** The load the goals are set for; another load is judged all the same, and says so. */
  devices: 10_000,
  rate: 1_000,
} as const;

/** One goal as judged: its figure for ours and the bare mean, the bound, and the verdict. */
export interface GoalVerdict {
  name: string;
  ours: number;
  bare: number;
  /** ours/bare, for the goals relative to bare Aedes. */
  ratio?: number;
  bound: string;
  ok: boolean;
  /** What `GOAL MISSED:` says. */
  miss: string;
}

/**
 * Ingest throughput of a run: the reports of its timed window over the window plus the slowest PUBACK
 * (every timed report was sent within the window and answered by then), so a server that falls behind
 * and catches up in the grace period shows it as lost throughput.
 */
export function ingestThroughput(m: Measured, load: ConnectLoad): number {
  const answered = m.run.latencies.length;
  if (!answered) return 0;
  return answered / (load.durationS + percentile(m.run.latencies, 100) / 1000);
}

const mean = (values: number[]) => values.reduce((x, y) => x + y, 0) / values.length;

/**
 * RSS without V8's young generation. That space grows with allocation up to `--max-semi-space-size` (64 MiB for
 * both halves with `npm start`'s 32), and its pages become resident as allocation first touches them; both stay
 * after a full GC: whichever broker's young generation was still small, or not yet touched, when idle would count
 * tens of MiB of it as memory of its connections, a cost bounded by a flag and not set by the connections. What is
 * subtracted is its resident size (V8's physical size of the space), not its committed size: ours has 64 MiB
 * committed at idle of which only about half is resident (bench/README "Memory per connection: settled, and the
 * young generation's resident part").
 */
const rssWithoutYoung = (m: Memory) => m.rss - m.youngGeneration;

/** Bytes per connection of `figure` between idle and all connected. */
const perConnection = (m: Measured, figure: (mem: Memory) => number) =>
  m.connected ? (figure(m.connectedMem) - figure(m.idle)) / m.connected : Number.NaN;

/**
 * The goals judged on the figures as printed (ratios to 2 decimals, milliseconds to 2): a missing figure
 * (nothing connected, no report answered) is a miss, never a pass.
 */
export function judgeGoals(ours: Measured, bares: Measured[], load: ConnectLoad): GoalVerdict[] {
  const rate = (m: Measured) => (m.connectMs > 0 ? m.connected / (m.connectMs / 1000) : Number.NaN);
  const rss = (m: Measured) => perConnection(m, rssWithoutYoung) / 1024;
  const round = (v: number, digits: number) => Number(v.toFixed(digits));
  const relative = (
    name: string,
    figure: (m: Measured) => number,
    bound: number,
    atLeast: boolean,
    unit: string,
  ): GoalVerdict => {
    const a = figure(ours);
    const b = mean(bares.map(figure));
    const ratio = round(a / b, 2);
    // A figure that is not positive (memory that shrank, a young generation not yet resident) says nothing:
    // a miss, never a pass.
    const ok = a > 0 && b > 0 && Number.isFinite(ratio) && (atLeast ? ratio >= bound : ratio <= bound);
    const sign = atLeast ? '≥' : '≤';
    return {
      name,
      ours: a,
      bare: b,
      ratio,
      bound: `${sign} ${bound} × bare`,
      ok,
      miss: `${name.replace(/ \(.*\)$/, '')}: ours/bare ${fmt(ratio, 2)} (${fmt(a, 1)} vs ${fmt(b, 1)} ${unit}), goal ${sign} ${bound}`,
    };
  };
  const p99 = round(percentile(ours.run.latencies, 99), 2);
  const throughput = ingestThroughput(ours, load);
  const minThroughput = GOALS.throughputShare * load.rate;
  return [
    relative('connect rate (connections/s)', rate, GOALS.connectRatio, true, 'connections/s'),
    relative('RSS per connection, young generation excluded (KiB)', rss, GOALS.rssRatio, false, 'KiB'),
    {
      name: `report latency p99 at ${load.rate}/s (ms)`,
      ours: p99,
      bare: round(mean(bares.map((m) => percentile(m.run.latencies, 99))), 2),
      bound: `≤ ${GOALS.reportP99Ms} ms`,
      ok: Number.isFinite(p99) && p99 <= GOALS.reportP99Ms,
      miss: `report latency p99 at ${load.rate}/s: ${fmt(p99, 2)} ms, goal ≤ ${GOALS.reportP99Ms} ms`,
    },
    {
      name: 'ingest throughput (reports/s answered)',
      ours: throughput,
      bare: mean(bares.map((m) => ingestThroughput(m, load))),
      bound: `≥ ${fmt(minThroughput)}/s`,
      ok: round(throughput, 0) >= minThroughput,
      miss: `ingest throughput: ${fmt(throughput)} reports/s answered, goal ≥ ${fmt(minThroughput)} (${GOALS.throughputShare} of --rate ${load.rate})`,
    },
  ];
}

/** Prints each goal next to its figure with ok/MISS; answers the `GOAL MISSED:` lines (none: all met). */
export function printGoals(verdicts: GoalVerdict[], load: ConnectLoad): string[] {
  const w = [40, 11, 11, 11, 16, 6];
  const line = (cells: string[]) =>
    console.log(cells.map((c, i) => (i === 0 ? c.padEnd(w[0]!) : c.padStart(w[i]!))).join('  '));
  console.log('');
  line(['goal (bench/README.md)', 'ours', 'bare mean', 'ours/bare', 'goal', '']);
  line(w.map((n) => '-'.repeat(n)));
  for (const v of verdicts)
    line([
      v.name,
      fmt(v.ours, 2),
      fmt(v.bare, 2),
      v.ratio === undefined ? '' : fmt(v.ratio, 2),
      v.bound,
      v.ok ? 'ok' : 'MISS',
    ]);
  if (load.devices !== GOALS.devices || load.rate !== GOALS.rate)
    console.log(
      `note: the goals are set for --devices ${GOALS.devices} --rate ${GOALS.rate}; this run (--devices ${load.devices} --rate ${load.rate}) is judged against them all the same`,
    );
  return verdicts.filter((v) => !v.ok).map((v) => v.miss);
}

const ratio = (a: number, b: number) => (b > 0 && Number.isFinite(a / b) ? (a / b).toFixed(2) : '–');

/** The table of figures, ours next to each bare run, with ours/bare for the headline figures. */
export function printTable(ours: Measured, bares: Measured[], devices: number) {
  const perConn = (m: Measured, key: 'rss' | 'heapUsed' | 'external') => perConnection(m, (mem) => mem[key]);
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
    ['  young generation excluded (KiB)', (m) => perConnection(m, rssWithoutYoung) / 1024, 1, true],
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
