import { TooManyRequests } from '../../errors.ts';

/**
 * Message rates of devices, whatever carries them (MQTT, gateways, raw TCP, HTTP): one token bucket
 * per device (the project's `device_rate_limit`, kept across reconnects and shared by transports) and
 * one per project (the operator's per-project budget), so neither one device nor one tenant can take
 * the ingest from the others (README "Security and limits").
 *
 * Two ways to ask, because an acknowledgement is a promise:
 * - `admit`: the message goes now or not at all (QoS 0, HTTP): nothing is taken when refused, and
 *   the caller says how long to wait (429, Retry-After).
 * - `reserve`: the message will go, later if need be (QoS 1, TCP streams): the tokens are taken,
 *   possibly into debt, and the caller holds the message (stops reading the connection) for the
 *   delay returned. A debt beyond `maxDelayMs` is refused instead (nothing taken): the caller refuses
 *   the message visibly or ends the connection, never acknowledges and drops it.
 */
/**
 * A message refused by the limiter after it was read (a gateway's sub-device over its rate): errcode
 * 429; a transport that acknowledges refuses it visibly instead (MQTT 5 PUBACK 0x97, 3.1.1 closes).
 */
export class RateExceeded extends TooManyRequests {
  override name = 'RateExceeded';
}

export interface RateLimiterOptions {
  /** Messages per second of all the devices of one project together; 0 = no project budget. */
  projectRate: number;
  /** The longest a reserved message may be held before it is refused instead. */
  maxDelayMs: number;
  /** Refusals within `abuseWindowMs`, in multiples of the device's rate, that mark a flood. */
  abuseFactor: number;
  abuseWindowMs: number;
  clock?: () => number;
}

export const RATE_DEFAULTS = {
  projectRate: 5_000,
  maxDelayMs: 10_000,
  abuseFactor: 10,
  abuseWindowMs: 10_000,
} as const;

interface Bucket {
  rate: number;
  /** May go below zero: messages reserved ahead of time. */
  tokens: number;
  last: number;
  refused: number;
  windowStart: number;
}

export type Admission =
  /** Taken: go (`delayMs` 0) or go after `delayMs`. */
  | { ok: true; delayMs: number }
  /** Not taken: over the device's rate (`by` device) or its project's budget, try again after `retryMs`; `flood` when the device keeps at it. */
  | { ok: false; by: 'device' | 'project'; retryMs: number; flood: boolean };

/** The common answer, shared: no allocation per message. */
const NOW: Admission = Object.freeze({ ok: true, delayMs: 0 });

/** A device's bucket as it moves between nodes of a cluster (docs/cluster.md §7): what is left of it, and when. */
export interface BucketState {
  tokens: number;
  /** Epoch ms the tokens were counted at. */
  at: number;
}

export interface RateLimiter {
  /** The device's bucket now (undefined: none, i.e. full), to hand to the node its next session is on. */
  export(deviceId: string): BucketState | undefined;
  /**
   * Takes over a bucket another node kept for the device: never more tokens than this node's own bucket
   * holds, so moving between nodes cannot refill a device faster than its rate.
   */
  adopt(deviceId: string, state: BucketState, deviceRate: number): void;
  admit(projectId: string, deviceId: string, deviceRate: number, cost?: number): Admission;
  reserve(projectId: string, deviceId: string, deviceRate: number, cost?: number): Admission;
  /** Forgets idle buckets (full again and unused for the abuse window); also done by itself once a minute. */
  sweep(): void;
  readonly size: number;
}

export function createRateLimiter(options: Partial<RateLimiterOptions> = {}): RateLimiter {
  const o = { ...RATE_DEFAULTS, ...options };
  const clock = options.clock ?? Date.now;
  const devices = new Map<string, Bucket>();
  const projects = new Map<string, Bucket>();
  let lastSweep = clock();

  function sweep() {
    const now = clock();
    lastSweep = now;
    for (const map of [devices, projects]) {
      for (const [key, b] of map) {
        if (now - b.last > o.abuseWindowMs && b.tokens + ((now - b.last) / 1000) * b.rate >= b.rate * 2)
          map.delete(key);
      }
    }
  }

  function bucket(map: Map<string, Bucket>, key: string, rate: number, now: number): Bucket {
    let b = map.get(key);
    if (!b) {
      b = { rate, tokens: rate * 2, last: now, refused: 0, windowStart: now };
      map.set(key, b);
    }
    // Refilled at the rate in force now (a project may have changed it); the burst is twice the rate.
    b.rate = rate;
    b.tokens = Math.min(rate * 2, b.tokens + ((now - b.last) / 1000) * rate);
    b.last = now;
    return b;
  }

  /** How long until `b` holds `cost` tokens. */
  const waitFor = (b: Bucket, cost: number) => (b.tokens >= cost ? 0 : ((cost - b.tokens) / b.rate) * 1000);

  function refused(device: Bucket, by: 'device' | 'project', retryMs: number, now: number): Admission {
    if (now - device.windowStart > o.abuseWindowMs) {
      device.windowStart = now;
      device.refused = 0;
    }
    device.refused += 1;
    return { ok: false, by, retryMs: Math.ceil(retryMs), flood: device.refused >= device.rate * o.abuseFactor };
  }

  function ask(projectId: string, deviceId: string, deviceRate: number, cost: number, maxDelayMs: number): Admission {
    const now = clock();
    if (now - lastSweep > 60_000) sweep();
    const device = bucket(devices, deviceId, deviceRate, now);
    // A message never costs more than the bucket holds: a large one must stay possible at a low rate.
    const deviceCost = Math.min(cost, deviceRate * 2);
    const project = o.projectRate > 0 ? bucket(projects, projectId, o.projectRate, now) : undefined;
    const projectCost = Math.min(cost, o.projectRate * 2);
    const deviceWait = waitFor(device, deviceCost);
    const projectWait = project ? waitFor(project, projectCost) : 0;
    if (deviceWait > maxDelayMs) return refused(device, 'device', deviceWait, now);
    if (projectWait > maxDelayMs) return refused(device, 'project', projectWait, now);
    device.tokens -= deviceCost;
    if (project) project.tokens -= projectCost;
    const delayMs = Math.ceil(Math.max(deviceWait, projectWait));
    return delayMs === 0 ? NOW : { ok: true, delayMs };
  }

  return {
    export(deviceId) {
      const b = devices.get(deviceId);
      if (!b) return undefined;
      const now = clock();
      return { tokens: Math.min(b.rate * 2, b.tokens + ((now - b.last) / 1000) * b.rate), at: now };
    },
    adopt(deviceId, state, deviceRate) {
      if (!Number.isFinite(state.tokens) || !Number.isFinite(state.at) || !(deviceRate > 0)) return;
      const now = clock();
      const b = bucket(devices, deviceId, deviceRate, now);
      // Refilled for the time it travelled (at most to now), then the lower of the two counts.
      const elapsed = Math.max(0, Math.min(now, now - state.at));
      // Never below the debt a node allows itself (a hostile or broken hand-off cannot starve the device).
      const floor = -deviceRate * (o.maxDelayMs / 1000);
      const carried = Math.min(deviceRate * 2, Math.max(floor, state.tokens) + (elapsed / 1000) * deviceRate);
      b.tokens = Math.min(b.tokens, carried);
    },
    admit: (projectId, deviceId, deviceRate, cost = 1) => ask(projectId, deviceId, deviceRate, cost, 0),
    reserve: (projectId, deviceId, deviceRate, cost = 1) => ask(projectId, deviceId, deviceRate, cost, o.maxDelayMs),
    sweep,
    get size() {
      return devices.size + projects.size;
    },
  };
}
