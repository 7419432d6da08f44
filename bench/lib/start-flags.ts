import { readFileSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');

/** Arguments that load code (the TypeScript loader of `npm start`): whoever starts the server adds its own. */
const LOADERS = new Set(['--import', '--require', '-r', '--loader', '--experimental-loader']);

/**
 * The Node/V8 flags `npm start` gives the server (package.json `scripts.start`: `node <flags> <entry>`, e.g. the
 * young generation's size, no pretenuring), without the loader and the entry: the benches run our server — and
 * the bare baseline, for a fair comparison — with them, and the compiled server's test too, so what they run is
 * what is deployed.
 */
export function startFlags(dir = root): string[] {
  const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { scripts?: { start?: string } };
  const argv = (pkg.scripts?.start ?? '').split(/\s+/).filter(Boolean).slice(1);
  const flags: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const name = arg.split('=')[0]!;
    if (LOADERS.has(name)) {
      if (name === arg) i++; // `--import tsx`: its value too
    } else if (arg.startsWith('-')) flags.push(arg);
  }
  return flags;
}
