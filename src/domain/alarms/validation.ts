import type { AlarmCondition } from '../../db/schema/index.ts';
import { BadRequest, type FieldError } from '../../errors.ts';
import { AddressNotAllowed, type NetGuard } from '../../lib/net-guard.ts';

/** What the alarms service checks before it stores: limits, conditions (what a schema cannot), webhook URLs. */

export const ALARM_LIMITS = {
  rulesPerProject: 1_000,
  /** Rules of one device type: each report of the type may be checked against all of them. */
  rulesPerType: 100,
  targetsPerProject: 20,
  deviceIds: 500,
  groupIds: 100,
  /** Longest persistence, offline or silence time: 30 days. */
  maxSeconds: 30 * 24 * 3600,
  messageMax: 512,
  noteMax: 1024,
};

/**
 * A webhook URL: http or https, nothing else (no file:, no data:), to a host whose every address the
 * guard allows (public unicast unless the operator allows the network). The WHATWG parser has already
 * turned `0x7f000001`, `2130706433`, `0177.1` or `127.1` into `127.0.0.1`.
 */
export async function checkWebhookUrl(guard: NetGuard, url: string) {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new BadRequest('Invalid notification target: url is not a URL', [{ path: 'url', message: 'not a URL' }]);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    throw new BadRequest('Invalid notification target: url must be http or https', [
      { path: 'url', message: 'http or https only' },
    ]);
  try {
    await guard.check(parsed.hostname);
  } catch (err) {
    // A name that does not resolve gets the same answer as one resolving to a private address: the
    // server's resolver may know the private network's names, and their existence is not for tenants.
    const refused =
      err instanceof AddressNotAllowed && !err.viaName
        ? err.message
        : `host ${parsed.hostname} is not allowed: it must resolve to public addresses`;
    const message = `${refused} (loopback, private, link-local and other non-public addresses are refused)`;
    throw new BadRequest(`Invalid notification target: url: ${message}`, [{ path: 'url', message }]);
  }
}

/** Refuses an alarm rule, naming its first wrong field. */
export function invalidRule(errors: FieldError[]): never {
  throw new BadRequest(`Invalid alarm rule: ${errors[0]!.path}: ${errors[0]!.message}`, errors);
}

/** Checks what a schema cannot: operators against value types, ranges, limits (the service is also called directly). */
export function checkCondition(c: AlarmCondition): void {
  const e = (path: string, message: string) => invalidRule([{ path: `condition.${path}`, message }]);
  const seconds = (v: unknown, path: string, min: number) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > ALARM_LIMITS.maxSeconds)
      e(path, `an integer from ${min} to ${ALARM_LIMITS.maxSeconds}`);
  };
  if (c.kind === 'offline') return seconds(c.for_seconds, 'for_seconds', 0);
  if (c.kind === 'silence') return seconds(c.seconds, 'seconds', 1);
  if (c.kind !== 'attribute') e('kind', 'attribute, offline or silence');
  if (typeof c.identifier !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(c.identifier))
    e('identifier', 'an attribute identifier');
  if (c.for_seconds !== undefined) seconds(c.for_seconds, 'for_seconds', 0);
  switch (c.op) {
    case '>':
    case '>=':
    case '<':
    case '<=':
      if (typeof c.value !== 'number' || !Number.isFinite(c.value)) e('value', `${c.op} compares with a number`);
      return;
    case 'between':
    case 'outside':
      if (typeof c.min !== 'number' || typeof c.max !== 'number' || !Number.isFinite(c.min) || !Number.isFinite(c.max))
        e('min', `${c.op} needs numbers min and max`);
      if (c.min! > c.max!) e('max', 'must not be less than min');
      return;
    case '==':
    case '!=':
      if (!['number', 'boolean', 'string'].includes(typeof c.value))
        e('value', `${c.op} compares with a number, a boolean or a string`);
      if (typeof c.value === 'string' && c.value.length > 256) e('value', 'at most 256 characters');
      return;
    case 'change':
      if (c.for_seconds) e('for_seconds', 'change has no persistence window');
      return;
    default:
      e('op', 'one of >, >=, <, <=, between, outside, ==, !=, change');
  }
}

/** Only the fields of the condition's kind are kept (no stray input is stored). */
export function normalizeCondition(c: AlarmCondition): AlarmCondition {
  if (c.kind === 'offline') return { kind: 'offline', for_seconds: c.for_seconds };
  if (c.kind === 'silence') return { kind: 'silence', seconds: c.seconds };
  const out: AlarmCondition = { kind: 'attribute', identifier: c.identifier, op: c.op };
  if (c.op === 'between' || c.op === 'outside') Object.assign(out, { min: c.min, max: c.max });
  else if (c.op !== 'change') out.value = c.value;
  if (c.for_seconds) out.for_seconds = c.for_seconds;
  return out;
}
