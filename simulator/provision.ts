import type { DeviceIdentity } from './device.ts';
import type { SimOptions } from './options.ts';
import type { Stats } from './stats.ts';

/**
 * Self-provisioning of the simulated devices through `POST /device/v1/certificate` (device-protocol.md §4), the way
 * a fleet powering on behind one NAT should do it: a few requests in flight, and when the server answers 429 every
 * worker pauses for its `Retry-After` (README "Security and limits"), with jitter so they do not all come back at
 * the same instant, and longer after repeated refusals. Nothing waits for ever: the back-off grows to at most
 * `MAX_PAUSE_MS` (a longer `Retry-After` is honoured as it is), and provisioning gives up when no certificate came
 * for `STALL_MS`, or at once when the server asks for a longer wait than that. A server that is not there (no
 * connection, or answers that are not the API's) ends the whole run after `UNREACHABLE_GIVE_UP` such answers in a
 * row before any certificate came, rather than trying every device in turn.
 */
export const PROVISION_CONCURRENCY = 8;
export const MAX_PAUSE_MS = 30_000;
export const STALL_MS = 120_000;
/** Network failures and server faults (5xx) of one device: tries, and the first back-off. */
const TRANSIENT_TRIES = 4;
const TRANSIENT_BACKOFF_MS = 500;
/** Network failures and server faults in a row, before the first certificate, that end provisioning for the run. */
export const UNREACHABLE_GIVE_UP = 8;
/** Distinct provisioning failures printed as they happen (all are counted). */
const PRINTED_FAILURES = 3;

export interface ProvisionDeps {
  fetch?: typeof fetch;
  random?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  now?: () => number;
}

export interface ProvisionResult {
  ids: DeviceIdentity[];
  /** Devices left without an answer because the run was stopped (Ctrl-C) first: not counted as failed. */
  skipped: number;
}

type Answer =
  | { kind: 'ok'; token: string; connType: string }
  | { kind: 'limited'; retryMs: number; message: string }
  | { kind: 'transient'; message: string }
  /** `fatal`: every other device would get the same answer (wrong project key, unknown type, not a gateway type). */
  | { kind: 'refused'; message: string; fatal: boolean };

export const defaultSleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted || ms <= 0) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/** `Retry-After` in seconds (or an HTTP date), in ms; 1 s when absent or unreadable. */
export function retryAfterMs(header: string | null, now = Date.now()): number {
  if (header === null || header.trim() === '') return 1_000;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? 1_000 : Math.max(0, date - now);
}

/**
 * How long all workers pause after a 429: what the server asked, at least a back-off that doubles with each
 * refusal in a row (0.5 s, 1 s, 2 s …), plus up to half of that again at random, within MAX_PAUSE_MS; never
 * less than the server asked.
 */
export function pauseAfterLimit(retryMs: number, refusalsInARow: number, random: () => number): number {
  const backoff = TRANSIENT_BACKOFF_MS * 2 ** Math.min(Math.max(0, refusalsInARow - 1), 16);
  const jittered = Math.min(MAX_PAUSE_MS, Math.round(Math.max(retryMs, backoff) * (1 + random() * 0.5)));
  return Math.max(retryMs, jittered);
}

async function ask(options: SimOptions, deviceKey: string, doFetch: typeof fetch, now: () => number): Promise<Answer> {
  let res: Response;
  try {
    res = await doFetch(new URL('/device/v1/certificate', options.http), {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'Project-Key': options.projectKey },
      body: JSON.stringify({ device_key: deviceKey, type_key: options.typeKey }),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return {
      kind: 'transient',
      message: `cannot reach ${options.http}: ${cause?.code ?? cause?.message ?? (err as Error).message}`,
    };
  }
  const body = (await res.json().catch(() => undefined)) as
    | { result?: number; errcode?: number; message?: string; device?: { access_token?: unknown; conn_type?: unknown } }
    | undefined;
  const message = body?.message ?? `HTTP ${res.status}`;
  if (res.status === 429 || body?.errcode === 429)
    return { kind: 'limited', retryMs: retryAfterMs(res.headers.get('retry-after'), now()), message };
  if (res.status >= 500 || body === undefined) return { kind: 'transient', message };
  const token = body.device?.access_token;
  if (body.result === 1 && typeof token === 'string')
    return { kind: 'ok', token, connType: String(body.device?.conn_type ?? '1') };
  return { kind: 'refused', message, fatal: body.errcode === 401 || body.errcode === 404 };
}

/** Certificates of `<prefix>-1` … `<prefix>-<devices>`, created on first request through the type key. */
export async function provisionAll(
  options: SimOptions,
  stats: Stats,
  signal?: AbortSignal,
  deps: ProvisionDeps = {},
): Promise<ProvisionResult> {
  const doFetch = deps.fetch ?? fetch;
  const random = deps.random ?? Math.random;
  const sleep = deps.sleep ?? defaultSleep;
  const now = deps.now ?? Date.now;
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) stop.abort();

  const found: DeviceIdentity[] = [];
  const printed = new Set<string>();
  let next = 1;
  let resumeAt = 0;
  /** Rounds of refusals in a row: requests that were in flight together count as one round. */
  let refusalsInARow = 0;
  let roundStartedAt = Number.NEGATIVE_INFINITY;
  let lastProgress = now();
  let toldLimited = false;
  /** Answers in a row that were not the API's (see UNREACHABLE_GIVE_UP). */
  let unreachableInARow = 0;
  /** Devices whose requests were cut short by the stop. */
  let abandoned = 0;

  const fail = (deviceKey: string, message: string) => {
    const line = `certificate of ${deviceKey}: ${message}`;
    stats.error(line);
    if (printed.size < PRINTED_FAILURES && !printed.has(message)) {
      printed.add(message);
      stats.note(`sim: ${line}`);
    }
  };
  const giveUp = (deviceKey: string, message: string) => {
    fail(deviceKey, message);
    stop.abort();
  };

  /** One device: answers when it has its certificate or has failed for good. */
  async function one(index: number) {
    const deviceKey = `${options.prefix}-${index}`;
    let transient = 0;
    for (;;) {
      if (stop.signal.aborted) {
        abandoned++;
        return;
      }
      // Everybody waits out the server's pause (another worker may have learnt of a longer one meanwhile); each comes
      // back a little apart from the others.
      while (resumeAt > now() && !stop.signal.aborted)
        await sleep(resumeAt - now() + Math.round(random() * 250), stop.signal);
      if (stop.signal.aborted) continue;
      const sentAt = now();
      const answer = await ask(options, deviceKey, doFetch, now);
      if (answer.kind !== 'transient') unreachableInARow = 0;
      if (answer.kind === 'ok') {
        if (options.gateway && answer.connType !== '3') {
          return giveUp(
            deviceKey,
            `the type of type key ${options.typeKey} is not a gateway type (conn_type "${answer.connType}", a gateway is "3"): --gateway needs a gateway type's key`,
          );
        }
        refusalsInARow = 0;
        lastProgress = now();
        stats.provisioned++;
        found.push({ index, token: answer.token });
        return;
      }
      if (answer.kind === 'limited') {
        stats.provisionWaits++;
        if (now() - lastProgress > STALL_MS) {
          return giveUp(
            deviceKey,
            `gave up: the server refused certificate requests for ${STALL_MS / 1000} s (${answer.message})`,
          );
        }
        if (answer.retryMs > STALL_MS) {
          return giveUp(
            deviceKey,
            `gave up: the server asks to wait ${Math.ceil(answer.retryMs / 1000)} s (${answer.message})`,
          );
        }
        if (sentAt > roundStartedAt) {
          refusalsInARow++;
          roundStartedAt = now();
        }
        resumeAt = Math.max(resumeAt, now() + pauseAfterLimit(answer.retryMs, refusalsInARow, random));
        if (!toldLimited) {
          toldLimited = true;
          stats.note(`sim: the server limits certificate requests (${answer.message}); waiting as it asks`);
        }
        continue;
      }
      if (answer.kind === 'transient') {
        if (found.length === 0 && ++unreachableInARow >= UNREACHABLE_GIVE_UP) {
          return giveUp(
            deviceKey,
            `gave up: ${UNREACHABLE_GIVE_UP} certificate requests in a row got no answer from the API at ${options.http} (${answer.message}); is the server running there?`,
          );
        }
        if (++transient >= TRANSIENT_TRIES) return fail(deviceKey, `${answer.message} (${TRANSIENT_TRIES} tries)`);
        await sleep(Math.round(TRANSIENT_BACKOFF_MS * 2 ** (transient - 1) * (1 + random() * 0.5)), stop.signal);
        continue;
      }
      return answer.fatal ? giveUp(deviceKey, answer.message) : fail(deviceKey, answer.message);
    }
  }

  const worker = async () => {
    while (next <= options.devices && !stop.signal.aborted) await one(next++);
  };
  try {
    await Promise.all(Array.from({ length: Math.min(PROVISION_CONCURRENCY, options.devices) }, worker));
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  // After Ctrl-C the devices not provisioned yet were not asked for; after giving up they were, and are short.
  const skipped = signal?.aborted ? options.devices - (next - 1) + abandoned : 0;
  return { ids: found.sort((a, b) => a.index - b.index), skipped };
}
