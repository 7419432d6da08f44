import { parseArgs } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { UsageError } from '../options.ts';
import type { Output } from '../stats.ts';

/** What `subscribe` follows (device-protocol.md §9). */
export const SUBSCRIBE_KINDS = ['attributes', 'event', 'command_reply', 'online', 'alarm', 'data'] as const;
export type SubscribeKind = (typeof SUBSCRIBE_KINDS)[number];

export interface SubscribeOptions {
  host: string;
  viewKey: string;
  viewSecret: string;
  /** A device view token, or `+` for every device of the project. */
  device: string;
  kinds: SubscribeKind[];
  json: boolean;
  /** Stop after this many messages (0 = until interrupted). */
  count: number;
}

export const SUBSCRIBE_HELP = `Usage: npm run sim -- subscribe --view-key <key> --view-secret <secret> [options]

Prints a project's live stream as an application sees it (device-protocol.md §9): connects to
the broker read-only with the project's data-view key (POST /api/v1/view_key) and subscribes to
<view key>/<device>/<kind>. One line per message: time, device, kind and what happened.

  --host <url>            MQTT url, mqtt:// or ws://…/mqtt (default mqtt://127.0.0.1:1883)  env SIM_HOST
  --view-key <key>        the project's view key                                env SIM_VIEW_KEY
  --view-secret <secret>  its secret                                            env SIM_VIEW_SECRET
  --device <view token>   one device (its view_token), or + for all (default +)
  --kinds <list>          comma list of ${SUBSCRIBE_KINDS.join(', ')}
                          (default: all; data follows every stream)
  --json                  print each message as one JSON line {topic, message}
  --count <n>             stop after n messages (default: until Ctrl-C)
`;

export function parseSubscribeOptions(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): SubscribeOptions & { help: boolean } {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        host: { type: 'string' },
        'view-key': { type: 'string' },
        'view-secret': { type: 'string' },
        device: { type: 'string' },
        kinds: { type: 'string' },
        json: { type: 'boolean' },
        count: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const viewKey = values['view-key'] ?? env.SIM_VIEW_KEY ?? '';
  const viewSecret = values['view-secret'] ?? env.SIM_VIEW_SECRET ?? '';
  const host = values.host ?? env.SIM_HOST ?? 'mqtt://127.0.0.1:1883';
  const device = values.device ?? '+';
  const kinds = (values.kinds ?? SUBSCRIBE_KINDS.join(','))
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  const count = values.count === undefined ? 0 : Number(values.count);
  if (values.help) return { host, viewKey, viewSecret, device, kinds: [], json: false, count: 0, help: true };
  if (!viewKey || !viewSecret)
    throw new UsageError('subscribe needs --view-key and --view-secret (create them with POST /api/v1/view_key)');
  if (!/^(mqtts?|wss?):\/\//.test(host)) throw new UsageError(`--host must be an mqtt:// or ws:// url (got ${host})`);
  if (device !== '+' && !/^[A-Za-z0-9_-]{1,64}$/.test(device))
    throw new UsageError('--device must be a device view token or +');
  const unknown = kinds.filter((k) => !(SUBSCRIBE_KINDS as readonly string[]).includes(k));
  if (unknown.length || !kinds.length)
    throw new UsageError(`--kinds must list some of ${SUBSCRIBE_KINDS.join(', ')} (got ${values.kinds})`);
  if (!Number.isInteger(count) || count < 0) throw new UsageError('--count must be a whole number');
  return {
    host,
    viewKey,
    viewSecret,
    device,
    kinds: kinds as SubscribeKind[],
    json: values.json === true,
    count,
    help: false,
  };
}

/** The topic filters of the options: `<key>/<device>/<kind>`, and `data/+` for every stream. */
export const filtersOf = (o: Pick<SubscribeOptions, 'viewKey' | 'device' | 'kinds'>) =>
  o.kinds.map((k) => `${o.viewKey}/${o.device}/${k === 'data' ? 'data/+' : k}`);

/** One line for a message: `HH:MM:SS.mmm <device> <kind> <details>`. */
export function formatMessage(topic: string, body: Record<string, unknown>): string {
  const [, , ...kindParts] = topic.split('/');
  const kind = kindParts.join('/');
  const device = body.device as { id?: string; name?: string } | undefined;
  const who = device?.name ? `${device.name} (${device.id})` : (device?.id ?? '?');
  const time = new Date(typeof body.ts === 'number' ? body.ts : Date.now()).toISOString().slice(11, 23);
  let details: string;
  if (kind === 'attributes')
    details = `${JSON.stringify(body.attributes)}${body.attr_type && body.attr_type !== 'report' ? ` (${String(body.attr_type)})` : ''}`;
  else if (kind === 'online') details = body.online ? 'online' : 'offline';
  else if (kind === 'event') details = `${String(body.method)} ${JSON.stringify(body.params ?? {})}`;
  else if (kind === 'command_reply')
    details = `#${String(body.id)} ${String(body.method)} ${JSON.stringify(body.params ?? {})}`;
  else if (kind.startsWith('data/')) details = `${String(body.direction)} ${String(body.hex)}`;
  else details = JSON.stringify({ ...body, device: undefined, ts: undefined });
  return `${time} ${who} ${kind} ${details}`;
}

/**
 * `sim subscribe`: prints the stream until interrupted (or `count` messages). Answers the exit code:
 * 0 after a clean stop, 1 when the broker refused the login or a subscription.
 */
export async function subscribe(o: SubscribeOptions, out: Output, err: Output, signal?: AbortSignal): Promise<number> {
  let client: MqttClient;
  try {
    client = await mqtt.connectAsync(o.host, {
      username: o.viewKey,
      password: o.viewSecret,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      clientId: `sim-subscribe-${process.pid}`,
    });
  } catch (e) {
    err.write(`sim subscribe: cannot connect to ${o.host}: ${(e as Error).message}\n`);
    return 1;
  }
  try {
    const granted = await client.subscribeAsync(filtersOf(o), { qos: 0 });
    const refused = granted.filter((g) => g.qos === 128).map((g) => g.topic);
    if (refused.length) {
      err.write(`sim subscribe: refused: ${refused.join(', ')}\n`);
      return 1;
    }
    err.write(`sim subscribe: following ${filtersOf(o).join(', ')} (Ctrl-C to stop)\n`);
    let seen = 0;
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      signal?.addEventListener('abort', stop, { once: true });
      client.once('close', stop);
      client.on('message', (topic, payload) => {
        // Messages already received when the count was reached arrive before the client has closed: not printed.
        if (o.count && seen >= o.count) return;
        let body: Record<string, unknown>;
        try {
          body = JSON.parse(payload.toString()) as Record<string, unknown>;
        } catch {
          body = { raw: payload.toString('hex') };
        }
        out.write(o.json ? `${JSON.stringify({ topic, message: body })}\n` : `${formatMessage(topic, body)}\n`);
        seen += 1;
        if (o.count && seen >= o.count) resolve();
      });
    });
    return 0;
  } finally {
    await client.endAsync().catch(() => {});
  }
}
