import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { hostList, hostListProblem } from './hosts.ts';

/** Thrown for anything wrong with the flags: the CLI prints it and exits with 2. */
export class UsageError extends Error {}

export interface SimOptions {
  host: string;
  http: string;
  projectKey: string;
  typeKey?: string;
  tokens?: string[];
  devices: number;
  rate: number;
  qos: 0 | 1;
  duration: number;
  rampUp: number;
  protocol: 'mqtt' | 'ws' | 'tcp';
  mqttVersion: 4 | 5;
  /** `--protocol tcp`: what the frames carry (device-protocol.md §6). */
  tcpFormat: 'hex' | 'text' | 'json';
  /** `--protocol tcp`: a keep-alive string sent every 30 s, or none. */
  tcpHeartbeat?: string;
  prefix: string;
  quiet: boolean;
  /** `--gateway`: each device is a gateway carrying `subDevices` sub-devices at addresses 1…K (device-protocol.md §8). */
  gateway: boolean;
  subDevices: number;
  /** `--api-token` + `--sub-type`: create and attach the sub-devices through the project API first. */
  apiToken?: string;
  subType?: string;
}

/** Flag name → environment variable (flag > env > default). */
const ENV = {
  host: 'SIM_HOST',
  http: 'SIM_HTTP',
  'project-key': 'SIM_PROJECT_KEY',
  'type-key': 'SIM_TYPE_KEY',
  tokens: 'SIM_TOKENS',
  devices: 'SIM_DEVICES',
  rate: 'SIM_RATE',
  qos: 'SIM_QOS',
  duration: 'SIM_DURATION',
  'ramp-up': 'SIM_RAMP_UP',
  protocol: 'SIM_PROTOCOL',
  'mqtt-version': 'SIM_MQTT_VERSION',
  'tcp-format': 'SIM_TCP_FORMAT',
  'tcp-heartbeat': 'SIM_TCP_HEARTBEAT',
  prefix: 'SIM_PREFIX',
  quiet: 'SIM_QUIET',
  gateway: 'SIM_GATEWAY',
  'sub-devices': 'SIM_SUB_DEVICES',
  'api-token': 'SIM_API_TOKEN',
  'sub-type': 'SIM_SUB_TYPE',
} as const;

type Flag = keyof typeof ENV;
/** Flags without a value; their environment variables take 1/true/yes. */
const BOOLEAN_FLAGS: ReadonlySet<Flag> = new Set(['quiet', 'gateway']);

const stringFlags = Object.fromEntries(
  (Object.keys(ENV) as Flag[]).filter((f) => !BOOLEAN_FLAGS.has(f)).map((f) => [f, { type: 'string' as const }]),
) as Record<Exclude<Flag, 'quiet' | 'gateway'>, { type: 'string' }>;

const url = (schemes: string[]) =>
  z
    .string()
    .max(2048)
    .refine(
      (s) => {
        try {
          return schemes.includes(new URL(s).protocol);
        } catch {
          return false;
        }
      },
      `a ${schemes.map((s) => s.replace(':', '://')).join(' or ')} url`,
    );

/** `--host`: one url, or several separated by commas (a cluster's nodes, tried in turn: hosts.ts). */
const hosts = (schemes: string[]) =>
  z
    .string()
    .max(16_384)
    .superRefine((s, ctx) => {
      const urls = hostList(s);
      const one = url(schemes);
      const bad = urls.find((u) => !one.safeParse(u).success);
      if (bad !== undefined)
        return void ctx.addIssue({
          code: 'custom',
          message: `a ${schemes.map((x) => x.replace(':', '://')).join(' or ')} url, or several separated by commas (not ${bad.slice(0, 100)})`,
        });
      const problem = hostListProblem(urls);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .transform((s) => hostList(s).join(','));

const num = (schema: z.ZodNumber) => z.coerce.number().pipe(schema);

const Schema = z
  .object({
    host: hosts(['mqtt:', 'mqtts:', 'tcp:', 'ws:', 'wss:']).optional(),
    http: url(['http:', 'https:']).default('http://127.0.0.1:8080'),
    'project-key': z.string({ error: 'is required' }).min(1, 'is required').max(256),
    'type-key': z.string().min(1).max(128).optional(),
    tokens: z.string().min(1).max(1_000_000).optional(),
    devices: num(z.number().int().min(1).max(100_000)).optional(),
    rate: num(z.number().positive().max(1000)).default(0.2),
    qos: z.enum(['0', '1']).default('0'),
    duration: num(
      z
        .number()
        .min(0)
        .max(365 * 24 * 3600),
    ).default(0),
    'ramp-up': num(
      z
        .number()
        .min(0)
        .max(24 * 3600),
    ).default(0),
    protocol: z.enum(['mqtt', 'ws', 'tcp']).default('mqtt'),
    'mqtt-version': z.enum(['4', '5']).default('4'),
    'tcp-format': z.enum(['hex', 'text', 'json']).default('json'),
    'tcp-heartbeat': z.string().min(1).max(64).optional(),
    prefix: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[A-Za-z0-9_.:-]+$/, 'letters, digits and _ . : -')
      .optional(),
    quiet: z.boolean().default(false),
    gateway: z.boolean().default(false),
    'sub-devices': num(z.number().int().min(1).max(100)).optional(),
    'api-token': z.string().min(1).max(4096).optional(),
    'sub-type': z.string().min(1).max(64).optional(),
  })
  .refine((o) => o['type-key'] !== undefined || o.tokens !== undefined, {
    message: 'give --type-key (provision) or --tokens',
    path: ['type-key'],
  })
  .refine((o) => !(o['type-key'] !== undefined && o.tokens !== undefined), {
    message: 'give either --type-key or --tokens, not both',
    path: ['tokens'],
  })
  .refine((o) => o.protocol !== 'tcp' || o.host === undefined || o.host.startsWith('tcp:'), {
    message: 'with --protocol tcp, a tcp://host:port url',
    path: ['host'],
  })
  .refine((o) => !(o.gateway && o.protocol === 'tcp'), {
    message: 'gateways speak MQTT: not with --protocol tcp',
    path: ['gateway'],
  })
  .refine(
    (o) => o.gateway || (o['sub-devices'] === undefined && o['api-token'] === undefined && o['sub-type'] === undefined),
    {
      message: 'only with --gateway',
      path: ['sub-devices'],
    },
  )
  .refine((o) => (o['api-token'] === undefined) === (o['sub-type'] === undefined), {
    message: '--api-token and --sub-type go together',
    path: ['api-token'],
  })
  .refine((o) => o['api-token'] === undefined || o['type-key'] !== undefined, {
    message: 'attaching sub-devices needs provisioned gateways (--type-key), whose device keys name them',
    path: ['api-token'],
  });

/**
 * Without `--prefix`, device keys are `sim-<first 8 characters of the type key>-<n>`: a run with another type (a
 * gateway type after a direct one) gets devices of its own instead of finding the earlier run's.
 */
export function defaultPrefix(typeKey: string | undefined): string {
  const tag = (typeKey ?? '').replace(/[^A-Za-z0-9_.:-]/g, '_').slice(0, 8);
  return tag ? `sim-${tag}` : 'sim';
}

export type ParsedArgs = { help: true; command: 'help' } | { help: false; command: 'run'; options: SimOptions };

/** `--tokens`: an existing file (one token a line) or a comma list. */
function readTokens(value: string): string[] {
  const text = existsSync(value) ? readFileSync(value, 'utf8') : value;
  const tokens = text
    .split(/[\s,]+/)
    .map((t) => t.trim())
    .filter((t) => t.length > 0 && !t.startsWith('#'));
  if (tokens.length === 0) throw new UsageError('--tokens: no tokens given');
  return tokens;
}

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): ParsedArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        ...stringFlags,
        quiet: { type: 'boolean' },
        gateway: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const [command = 'run', ...extra] = parsed.positionals;
  if (parsed.values.help || command === 'help') return { help: true, command: 'help' };
  if (command !== 'run') throw new UsageError(`unknown command "${command}"`);
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);

  const raw: Record<string, unknown> = {};
  for (const flag of Object.keys(ENV) as Flag[]) {
    const fromFlag = (parsed.values as Record<string, unknown>)[flag];
    const fromEnv = env[ENV[flag]];
    if (fromFlag !== undefined) raw[flag] = fromFlag;
    else if (fromEnv !== undefined && fromEnv !== '')
      raw[flag] = BOOLEAN_FLAGS.has(flag) ? ['1', 'true', 'yes'].includes(fromEnv.toLowerCase()) : fromEnv;
  }
  const result = Schema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new UsageError(`--${String(issue.path[0] ?? 'flags')}: ${issue.message}`);
  }
  const o = result.data;
  const tokens = o.tokens !== undefined ? readTokens(o.tokens) : undefined;
  const devices = o.devices ?? tokens?.length ?? 1;
  if (tokens && devices > tokens.length)
    throw new UsageError(`--devices: ${devices} devices but only ${tokens.length} tokens`);
  return {
    help: false,
    command: 'run',
    options: {
      host: o.host ?? (o.protocol === 'tcp' ? 'tcp://127.0.0.1:28801' : 'mqtt://127.0.0.1:1883'),
      http: o.http,
      projectKey: o['project-key'],
      ...(o['type-key'] !== undefined ? { typeKey: o['type-key'] } : {}),
      ...(tokens ? { tokens: tokens.slice(0, devices) } : {}),
      devices,
      rate: o.rate,
      qos: Number(o.qos) as 0 | 1,
      duration: o.duration,
      rampUp: o['ramp-up'],
      protocol: o.protocol,
      mqttVersion: Number(o['mqtt-version']) as 4 | 5,
      tcpFormat: o['tcp-format'],
      ...(o['tcp-heartbeat'] !== undefined ? { tcpHeartbeat: o['tcp-heartbeat'] } : {}),
      prefix: o.prefix ?? defaultPrefix(o['type-key']),
      quiet: o.quiet,
      gateway: o.gateway,
      subDevices: o['sub-devices'] ?? 3,
      ...(o['api-token'] !== undefined ? { apiToken: o['api-token'] } : {}),
      ...(o['sub-type'] !== undefined ? { subType: o['sub-type'] } : {}),
    },
  };
}
