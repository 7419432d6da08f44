import { readFileSync } from 'node:fs';
import path from 'node:path';
import { randomToken } from '../../src/lib/ids.ts';
import { BENCH_ADMISSION, cpuProfFlags, freePort, spawnEntry, tail, waitForPort, type Child } from './mqtt-proc.ts';

/**
 * A bare Aedes broker (mqtt-bare-broker.ts) in a child process on a free port, its log in `logDir`; `cpuProf`: a
 * directory for its CPU profile.
 */
export async function startBare(
  name: string,
  logDir: string,
  cpuProf?: string,
): Promise<{ child: Child; port: number }> {
  const port = await freePort();
  const child = spawnEntry(
    name,
    'bench/lib/mqtt-bare-broker.ts',
    { BARE_MQTT_PORT: String(port) },
    path.join(logDir, `${name.replace(/\W+/g, '-')}.log`),
    cpuProfFlags(cpuProf),
  );
  await waitForPort(port, child, 60_000);
  return { child, port };
}

/**
 * Settings for our server from the bench's own environment: `BENCH_SERVER_ENV="INGEST_BATCH_DELAY_MS=0 …"`
 * (space-separated NAME=value pairs), to compare a setting in runs of the same bench. The server's environment
 * is otherwise built here, not inherited.
 */
export function benchServerEnv(text = process.env.BENCH_SERVER_ENV ?? ''): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of text.split(/\s+/).filter(Boolean)) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(pair);
    if (!m) throw new Error(`BENCH_SERVER_ENV: "${pair}" is not NAME=value`);
    env[m[1]!] = m[2]!;
  }
  return env;
}

/**
 * Our server (src/main.ts) in a child process, listening on 127.0.0.1 with free HTTP and MQTT ports
 * (main.ts logs the HTTP address but not the MQTT one: both ports are chosen here), no TCP gateway, a
 * fresh JWT secret and the benches' admission settings; `env` adds to or overrides that, and
 * `BENCH_SERVER_ENV` (benchServerEnv) overrides both.
 */
export async function startOurs(opts: {
  dataDir: string;
  databaseUrl: string | undefined;
  logFile: string;
  env: Record<string, string>;
  /** A directory for V8 CPU profiles (`node --cpu-prof`), written when the server stops. */
  cpuProf?: string | undefined;
}): Promise<{ child: Child; port: number; base: string }> {
  const [httpPort, mqttPort] = [await freePort(), await freePort()];
  const child = spawnEntry(
    'ours',
    'src/main.ts',
    {
      DATA_DIR: opts.dataDir,
      DATABASE_URL: opts.databaseUrl,
      HOST: '127.0.0.1',
      HTTP_PORT: String(httpPort),
      MQTT_PORT: String(mqttPort),
      TCP_PORT: '0',
      JWT_SECRET: randomToken(48),
      ...opts.env,
      ...BENCH_ADMISSION,
      ...benchServerEnv(),
    },
    opts.logFile,
    cpuProfFlags(opts.cpuProf),
  );
  await waitForPort(httpPort, child, 120_000);
  await waitForPort(mqttPort, child, 60_000);
  return { child, port: mqttPort, base: `http://127.0.0.1:${httpPort}` };
}

/** Warnings and errors a server logged, with a few of them. */
export interface Logged {
  warn: number;
  error: number;
  samples: string[];
}

/** Warnings and errors the server logged (pino JSON lines, level 40+). */
export function loggedProblems(file: string): Logged {
  const out = { warn: 0, error: 0, samples: [] as string[] };
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let level: number;
    try {
      const parsed = JSON.parse(line) as { level?: unknown };
      level = typeof parsed.level === 'number' ? parsed.level : 0;
    } catch {
      level = 50; // not a JSON line: a crash trace or a runtime warning, counted as an error
    }
    if (level >= 50) out.error++;
    else if (level >= 40) out.warn++;
    else continue;
    if (out.samples.length < 5) out.samples.push(line.slice(0, 300));
  }
  return out;
}

/** Throws, with the end of its log, when `child` has exited. */
export function ensureAlive(child: Child, phase: string) {
  if (!child.alive())
    throw new Error(
      `${child.name} exited (${child.describeExit()}) during ${phase}; last log lines:\n${tail(child.logFile, 30)}`,
    );
}
