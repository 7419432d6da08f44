/**
 * Ratios of routes to a baseline route measured in alternating windows: baseline, route A, baseline,
 * route B, baseline, route A, … Each route window is divided by the mean of the two baseline windows around
 * it, so a drift of the process or the machine over the run (the baseline of bench/http-api moved 10–30%
 * between its first and last run in one process) weighs on both sides of each ratio alike. The figure per
 * route is the median of its windows' ratios.
 */
export interface Window {
  name: string;
  rps: number;
}

/** The order of the windows: the baseline first, last and between any two routes. */
export function pairedSchedule(baseline: string, routes: readonly string[], rounds: number): string[] {
  const order: string[] = [baseline];
  for (let i = 0; i < rounds; i++) for (const route of routes) order.push(route, baseline);
  return order;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

export interface PairedRatio {
  /** Median of the windows' ratios. */
  median: number;
  min: number;
  max: number;
  ratios: number[];
}

/** Per route, the ratio of each of its windows to the mean of the baseline windows on either side. */
export function pairedRatios(baseline: string, windows: readonly Window[]): Map<string, PairedRatio> {
  const ratios = new Map<string, number[]>();
  windows.forEach((w, i) => {
    if (w.name === baseline) return;
    const before = windows[i - 1];
    const after = windows[i + 1];
    if (before?.name !== baseline || after?.name !== baseline)
      throw new Error(`paired windows: ${w.name} (window ${i}) is not between two ${baseline} windows`);
    const base = (before.rps + after.rps) / 2;
    if (!(base > 0)) throw new Error(`paired windows: ${baseline} answered nothing around window ${i}`);
    ratios.set(w.name, [...(ratios.get(w.name) ?? []), w.rps / base]);
  });
  return new Map(
    [...ratios].map(([name, rs]) => [
      name,
      { median: median(rs), min: Math.min(...rs), max: Math.max(...rs), ratios: rs },
    ]),
  );
}
