import { pathToFileURL } from 'node:url';
import { help } from './commands/help.ts';
import { run } from './commands/run.ts';
import { parseSubscribeOptions, subscribe, SUBSCRIBE_HELP } from './commands/subscribe.ts';
import { parseOptions, UsageError } from './options.ts';
import type { Output, Summary } from './stats.ts';

export interface CliIo {
  out: Output;
  err: Output;
  /** Aborted on Ctrl-C by the process entry; tests abort it themselves. */
  signal?: AbortSignal;
}

/** The CLI: parses the flags and runs the command; answers the exit code (0 ok, 1 nothing connected, 2 bad flags). */
export async function main(argv: string[], io: CliIo, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  if (argv[0] === 'subscribe') {
    try {
      const o = parseSubscribeOptions(argv.slice(1), env);
      if (o.help) {
        io.out.write(SUBSCRIBE_HELP);
        return 0;
      }
      return await subscribe(o, io.out, io.err, io.signal);
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      io.err.write(`sim subscribe: ${err.message}\nRun "npm run sim -- subscribe --help" for the options.\n`);
      return 2;
    }
  }
  let parsed;
  try {
    parsed = parseOptions(argv, env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.err.write(`sim: ${err.message}\nRun "npm run sim -- --help" for the options.\n`);
    return 2;
  }
  if (parsed.help) return help(io.out);
  const result = await run(parsed.options, io.out, io.signal ? { signal: io.signal } : {});
  if (result.exitCode === 1) io.err.write(`${shortfallLine(result.summary)}\n`);
  return result.exitCode;
}

/** The one line that says why the run failed: how many of the devices asked for connected, and the last error. */
export function shortfallLine(s: Summary): string {
  const asked = s.devices - s.not_started;
  const head =
    s.connected_devices === 0
      ? `sim: no device could connect (0 of ${asked})`
      : `sim: only ${s.connected_devices} of ${asked} devices connected`;
  const parts = [
    ...(s.not_provisioned > 0 ? [`${s.not_provisioned} not provisioned`] : []),
    ...(s.not_started > 0 ? [`${s.not_started} not started (stopped first)`] : []),
  ];
  return `${head}${parts.length ? `; ${parts.join(', ')}` : ''}${s.last_error ? `; last error: ${s.last_error}` : ''}`;
}

const isEntry = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isEntry) {
  const controller = new AbortController();
  // The first Ctrl-C stops and prints the summary; a second one quits at once.
  process.once('SIGINT', () => {
    controller.abort();
    process.once('SIGINT', () => process.exit(130));
  });
  process.once('SIGTERM', () => controller.abort());
  const stream = (s: NodeJS.WriteStream): Output => ({ write: (t) => void s.write(t), isTTY: s.isTTY === true });
  main(process.argv.slice(2), {
    out: stream(process.stdout),
    err: stream(process.stderr),
    signal: controller.signal,
  }).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
