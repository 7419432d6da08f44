/** Display formatting of values, times and bytes (pure functions; the tests cover them). */
import type { Lang } from './i18n.ts';

export interface ValueModel {
  data_type?: string;
  unit?: string;
  data_options?: Record<string, unknown>;
}

/** A value as shown in the current values table: numbers with the model's precision and unit, booleans with their texts. */
export function formatValue(value: unknown, model?: ValueModel): string {
  const unit = model?.unit ? ` ${model.unit}` : '';
  const opts = model?.data_options ?? {};
  if (value === null || value === undefined) return '—';
  if (typeof value === 'number') {
    const precision = typeof opts.precision === 'number' ? opts.precision : undefined;
    const text = precision !== undefined ? value.toFixed(Math.max(0, Math.min(20, precision))) : String(value);
    return text + unit;
  }
  if (typeof value === 'boolean') {
    const t = value ? opts.true_text : opts.false_text;
    return typeof t === 'string' && t ? t : String(value);
  }
  if (typeof value === 'string') return value + unit;
  return JSON.stringify(value);
}

/** A time in ms as local date and time (YYYY-MM-DD HH:MM:SS), '—' for none. */
export function formatTime(ts: number | null | undefined): string {
  if (ts === null || ts === undefined || !Number.isFinite(ts)) return '—';
  const d = new Date(ts);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** How long ago, short: "5 s ago", "3 min ago", "2 h ago", "4 d ago" (or the Chinese forms). */
export function formatAgo(ts: number | null | undefined, now: number, lang: Lang): string {
  if (ts === null || ts === undefined || !Number.isFinite(ts)) return '—';
  const s = Math.max(0, Math.round((now - ts) / 1000));
  const [n, unit] =
    s < 60
      ? [s, 0]
      : s < 3600
        ? [Math.floor(s / 60), 1]
        : s < 86400
          ? [Math.floor(s / 3600), 2]
          : [Math.floor(s / 86400), 3];
  if (lang === 'zh') return `${n} ${['秒', '分钟', '小时', '天'][unit]}前`;
  return `${n} ${['s', 'min', 'h', 'd'][unit]} ago`;
}

/** Hex digits grouped by byte ("0a ff 10"); anything that is not an even run of hex digits is returned as is. */
export function formatHex(hex: string): string {
  const clean = hex.replace(/\s+/g, '');
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(clean)) return hex;
  return (clean.match(/../g) ?? []).join(' ').toLowerCase();
}

/** The latest activity time of a device's `active` map (docs/http-api.md §3.4). */
export function lastActive(active: Record<string, number> | undefined): number | undefined {
  if (!active) return undefined;
  const times = Object.values(active).filter((v) => typeof v === 'number');
  return times.length ? Math.max(...times) : undefined;
}

/** Parses a JSON object typed by the user; throws a readable error otherwise. */
export function parseJsonObject(text: string): Record<string, unknown> {
  const trimmed = text.trim();
  if (trimmed === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(trimmed);
  } catch (e) {
    throw new Error(`Invalid JSON: ${(e as Error).message}`, { cause: e });
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('Expected a JSON object');
  return v as Record<string, unknown>;
}

/** A rule's condition in one line ("temperature > 30", "offline 300 s", "silence 3600 s"). */
export function conditionText(c: Record<string, unknown>): string {
  if (c.kind === 'attribute') {
    const op = String(c.op ?? '');
    if (op === 'between' || op === 'outside') return `${String(c.identifier)} ${op} ${String(c.min)}…${String(c.max)}`;
    if (op === 'change') return `${String(c.identifier)} change`;
    return `${String(c.identifier)} ${op} ${JSON.stringify(c.value)}${c.for_seconds ? ` (${String(c.for_seconds)} s)` : ''}`;
  }
  if (c.kind === 'offline') return `offline > ${String(c.for_seconds)} s`;
  if (c.kind === 'silence') return `silence > ${String(c.seconds)} s`;
  return JSON.stringify(c);
}
