/** The command line is wrong: the message says how, and the exit code is 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** An expected failure worth one clear line (exit code 1). */
export class CliError extends Error {
  override name = 'CliError';
}
