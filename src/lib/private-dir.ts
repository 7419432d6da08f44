import { chmodSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { isMainThread } from 'node:worker_threads';

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
/** What the server keeps in DATA_DIR: the embedded database, the JWT secret, the lock, the control socket. */
const OWN_ENTRIES = ['pg', 'jwt-secret', 'lock', 'control.sock'];

/**
 * DATA_DIR holds the embedded database (its WAL has device tokens in it), the generated JWT secret,
 * the control socket and the lock: only the owner of the server may read any of it. Creates the
 * directory owner-only, sets the process umask so that everything written later (new WAL segments,
 * tables) is owner-only too, and repairs what an older version left readable: directories 0700,
 * files 0600, recursively in the embedded database. Symbolic links are not followed.
 */
export function protectDataDir(dataDir: string): void {
  // A worker thread cannot change the umask (tests); the modes set below still hold.
  if (isMainThread) process.umask(0o077);
  mkdirSync(dataDir, { recursive: true, mode: DIR_MODE });
  chmodSync(dataDir, DIR_MODE);
  // Only what the server creates: DATA_DIR may be a directory that holds other things too.
  for (const name of OWN_ENTRIES) restrict(path.join(dataDir, name));
}

function restrict(target: string): void {
  let stat;
  try {
    stat = lstatSync(target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // removed meanwhile
    throw err;
  }
  if (stat.isSymbolicLink()) return;
  const wanted = stat.isDirectory() ? DIR_MODE : FILE_MODE;
  if ((stat.mode & 0o777) !== wanted) chmodSync(target, wanted);
  if (stat.isDirectory()) for (const name of readdirSync(target)) restrict(path.join(target, name));
}
