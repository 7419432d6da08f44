import { SimDevice } from '../device.ts';
import { attachSubDevices, SimGateway } from '../gateway-device.ts';
import { SimTcpDevice } from '../tcp-device.ts';
import type { SimOptions } from '../options.ts';
import { provisionAll, type ProvisionResult } from '../provision.ts';
import { Stats, type Output, type Summary } from '../stats.ts';

export interface RunResult {
  summary: Summary;
  /** 0 when every device asked for connected (those the run was stopped before do not count), else 1. */
  exitCode: 0 | 1;
}

export interface RunHooks {
  /** Aborting ends the run early, like Ctrl-C. */
  signal?: AbortSignal;
}

/** The MQTT url: `--host`, or for `--protocol ws` the `/mqtt` path on the HTTP port (device-protocol.md §2). */
export function brokerUrl(options: Pick<SimOptions, 'host' | 'http' | 'protocol'>): string {
  if (options.protocol === 'mqtt' || options.protocol === 'tcp') return options.host;
  if (/^wss?:/.test(options.host)) return options.host;
  const http = new URL(options.http);
  return `${http.protocol === 'https:' ? 'wss' : 'ws'}://${http.host}/mqtt`;
}

async function identities(options: SimOptions, stats: Stats, signal?: AbortSignal): Promise<ProvisionResult> {
  if (options.tokens) return { ids: options.tokens.map((token, index) => ({ index: index + 1, token })), skipped: 0 };
  stats.provisioning = true;
  try {
    return await provisionAll(options, stats, signal);
  } finally {
    stats.provisioning = false;
  }
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted || ms <= 0) return resolve();
    // An endless wait still holds a timer, so the process lives until the signal.
    const timer = Number.isFinite(ms) ? setTimeout(done, ms) : setInterval(() => undefined, 2 ** 30);
    function done() {
      clearTimeout(timer);
      clearInterval(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/** The `run` command: simulates the devices until the duration is over or the signal aborts. */
export async function run(options: SimOptions, out: Output, hooks: RunHooks = {}): Promise<RunResult> {
  const { signal } = hooks;
  const stats = new Stats(options.devices, out, options.quiet);
  stats.startLive();
  const { ids, skipped } = await identities(options, stats, signal);
  let notStarted = skipped;
  const config = {
    url: brokerUrl(options),
    projectKey: options.projectKey,
    qos: options.qos,
    mqttVersion: options.mqttVersion,
    intervalMs: 1000 / options.rate,
  };
  const tcp = {
    url: options.host,
    projectKey: options.projectKey,
    format: options.tcpFormat,
    intervalMs: 1000 / options.rate,
    ...(options.tcpHeartbeat ? { heartbeat: options.tcpHeartbeat } : {}),
  };
  if (options.gateway && options.apiToken && options.subType) {
    const attach = {
      http: options.http,
      prefix: options.prefix,
      apiToken: options.apiToken,
      subType: options.subType,
      subDevices: options.subDevices,
    };
    await attachSubDevices(
      attach,
      ids.map((id) => id.index),
      stats,
      signal,
    );
  }
  const devices = ids.map((id) =>
    options.protocol === 'tcp'
      ? new SimTcpDevice(id, tcp, stats)
      : options.gateway
        ? new SimGateway(id, { ...config, subDevices: options.subDevices }, stats)
        : new SimDevice(id, config, stats),
  );

  const started = Date.now();
  const end = new AbortController();
  const stop = () => end.abort();
  signal?.addEventListener('abort', stop, { once: true });
  if (signal?.aborted) stop();
  const durationTimer = options.duration > 0 ? setTimeout(stop, options.duration * 1000) : undefined;
  // Every device refused: nothing more can happen, end early rather than wait for the duration.
  const watch = setInterval(() => {
    if (devices.length === 0 || devices.every((d) => d.failed)) stop();
  }, 250);

  // Ramp-up spreads the first connects evenly over the period.
  const gap = devices.length > 1 ? (options.rampUp * 1000) / devices.length : 0;
  for (const [i, device] of devices.entries()) {
    if (!end.signal.aborted) await sleep(started + i * gap - Date.now(), end.signal);
    if (end.signal.aborted) notStarted++;
    else device.start();
  }
  await sleep(Number.POSITIVE_INFINITY, end.signal);

  clearTimeout(durationTimer);
  clearInterval(watch);
  signal?.removeEventListener('abort', stop);
  const connectedAtEnd = devices.filter((d) => d.connected).length;
  await Promise.all(devices.map((d) => d.stop()));
  stats.notStarted = notStarted;
  stats.notProvisioned = options.tokens ? 0 : options.devices - skipped - ids.length;
  const summary = stats.summary(connectedAtEnd);
  stats.finish(summary);
  return { summary, exitCode: summary.connected_devices > 0 && summary.short === 0 ? 0 : 1 };
}
