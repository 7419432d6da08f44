import { HELP } from '../help.ts';
import type { Output } from '../stats.ts';

/** The `help` command (also `--help`, `-h`). */
export function help(out: Output): 0 {
  out.write(HELP);
  return 0;
}
