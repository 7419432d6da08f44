import type { AlarmCondition } from '../../db/schema/index.ts';

export type AttributeCondition = Extract<AlarmCondition, { kind: 'attribute' }>;

/**
 * Whether an attribute value meets the condition. `previous` is the value seen before it (for
 * `change`; undefined = none seen yet, which is no change). A value of the wrong type never meets a
 * comparison: a string is not "greater than 30".
 */
export function attributeHolds(c: AttributeCondition, value: unknown, previous: unknown): boolean {
  switch (c.op) {
    case '>':
    case '>=':
    case '<':
    case '<=': {
      if (typeof value !== 'number' || typeof c.value !== 'number') return false;
      if (c.op === '>') return value > c.value;
      if (c.op === '>=') return value >= c.value;
      if (c.op === '<') return value < c.value;
      return value <= c.value;
    }
    case 'between':
      return typeof value === 'number' && value >= c.min! && value <= c.max!;
    case 'outside':
      return typeof value === 'number' && (value < c.min! || value > c.max!);
    case '==':
      return value === c.value;
    case '!=':
      return (
        (typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean') && value !== c.value
      );
    case 'change':
      return previous !== undefined && !sameValue(previous, value);
  }
}

/** Equality of JSON values (objects and arrays by content). */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}

/** What the condition compares with, for messages and `alarm_info.threshold`. */
export function thresholdOf(c: AlarmCondition): unknown {
  if (c.kind === 'offline') return c.for_seconds;
  if (c.kind === 'silence') return c.seconds;
  if (c.op === 'between' || c.op === 'outside') return [c.min, c.max];
  return c.value ?? null;
}

/** A short description of the condition, the default message of a rule. */
export function describe(c: AlarmCondition): string {
  if (c.kind === 'offline') return '{{device.name}} offline for more than {{threshold}} s';
  if (c.kind === 'silence') return '{{device.name}} sent no report for {{threshold}} s';
  if (c.op === 'change') return '{{device.name}} {{identifier}} changed from {{previous}} to {{value}}';
  if (c.op === 'between' || c.op === 'outside')
    return `{{device.name}} {{identifier}} {{value}} ${c.op} {{min}}..{{max}}`;
  return `{{device.name}} {{identifier}} {{value}} ${c.op} {{threshold}}`;
}

const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}/g;
const MAX_MESSAGE = 1024;

/**
 * Fills `{{name}}` placeholders from `vars` (dotted names look into objects). Unknown names stay as
 * written, so a typo shows in the message instead of vanishing. Values are written as JSON unless
 * they are strings.
 */
export function renderMessage(template: string, vars: Record<string, unknown>): string {
  const out = template.replace(PLACEHOLDER, (whole, name: string) => {
    let v: unknown = vars;
    for (const part of name.split('.')) {
      if (v === null || typeof v !== 'object' || !Object.prototype.hasOwnProperty.call(v, part)) return whole;
      v = (v as Record<string, unknown>)[part];
    }
    if (v === undefined) return whole;
    return typeof v === 'string' ? v : JSON.stringify(v);
  });
  return out.length > MAX_MESSAGE ? `${out.slice(0, MAX_MESSAGE - 1)}…` : out;
}
