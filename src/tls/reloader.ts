import { watch, realpathSync, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { pairDigest, parseTlsCredentials, readPair, type TlsCredentials, type TlsFiles } from './credentials.ts';

/** Certificate renewals (docs/tls.md §4): what the reloader waits for and when it warns. */
export const TLS_RELOAD_DEFAULTS = {
  /** A change is read this long after the last file event: both files of a renewal are written by then. */
  settleMs: 300,
  /** A new pair that does not fit together is read once more after this, before the error is logged. */
  retryMs: 1_500,
  /** The certificate expiring within this is logged (warn) at load and at each periodic check. */
  expiryWarningMs: 14 * 24 * 3_600_000,
} as const;

export interface TlsReloaderOptions {
  files: TlsFiles;
  /** The pair read at start (readTlsCredentials). */
  initial: TlsCredentials;
  /** Periodic check of the files besides the directory watches (which some filesystems do not report). */
  intervalMs: number;
  logger: Pick<Logger, 'info' | 'warn' | 'error' | 'debug'>;
  settleMs?: number;
  retryMs?: number;
  clock?: () => number;
}

export interface TlsReloader {
  /** The pair in use now: new connections get it. */
  current(): TlsCredentials;
  /** Called with each new pair once it is in use (e.g. tls.Server#setSecureContext). */
  onChange(listener: (credentials: TlsCredentials) => void): void;
  /** Reads the files now; true when a new pair was taken into use. */
  check(): boolean;
  close(): void;
}

/** What to log about a certificate. */
export const describeCertificate = (c: TlsCredentials) => ({
  subject: c.certificate.subject,
  subjectAltName: c.certificate.subjectAltName,
  issuer: c.certificate.issuer,
  serialNumber: c.certificate.serialNumber,
  fingerprint256: c.certificate.fingerprint256,
  validTo: c.certificate.validTo,
  chain: c.chainLength,
});

/**
 * Keeps the certificate in use equal to the files on disk without a restart (docs/tls.md §4): the
 * directories holding the files (and, for symbolic links such as certbot's `live/`, their targets')
 * are watched, and the files are also read every `intervalMs`. A changed pair is checked like at
 * start; a pair that is unreadable, malformed or whose key does not match is refused with an error in
 * the log (once per content) and the previous pair stays in use. Existing connections keep the
 * certificate they were opened with.
 */
export function createTlsReloader(options: TlsReloaderOptions): TlsReloader {
  const { files, logger: log, clock = Date.now } = options;
  const settleMs = options.settleMs ?? TLS_RELOAD_DEFAULTS.settleMs;
  const retryMs = options.retryMs ?? TLS_RELOAD_DEFAULTS.retryMs;
  let current = options.initial;
  const listeners: Array<(c: TlsCredentials) => void> = [];
  /** The content (or read error) last refused and logged: not logged again until it changes. */
  let refused: string | undefined;
  /** A refused content seen once: logged if it is still there at the retry (a renewal half written). */
  let suspect: string | undefined;
  let expiryWarned = false;
  let settle: NodeJS.Timeout | undefined;
  let retry: NodeJS.Timeout | undefined;
  let closed = false;

  const warnExpiry = () => {
    if (expiryWarned) return;
    const left = current.certificate.expiresAt - clock();
    if (left > TLS_RELOAD_DEFAULTS.expiryWarningMs) return;
    expiryWarned = true;
    const message =
      left <= 0
        ? 'TLS certificate has expired: clients will refuse it; renew it (the new files are picked up without a restart)'
        : 'TLS certificate expires soon: renew it (the new files are picked up without a restart)';
    log.warn({ ...describeCertificate(current), files }, message);
  };
  warnExpiry();

  const refuse = (key: string, err: Error) => {
    if (key === refused) return;
    if (key !== suspect) {
      // Maybe a renewal in progress (the certificate written, the key not yet): read again before complaining.
      suspect = key;
      clearTimeout(retry);
      retry = setTimeout(check, retryMs);
      retry.unref();
      return;
    }
    refused = key;
    suspect = undefined;
    log.error(
      { err, files, inUse: describeCertificate(current) },
      `TLS certificate not reloaded, the previous one stays in use: ${err.message}`,
    );
  };

  function check(): boolean {
    if (closed) return false;
    const pair = readPair(files);
    if ('error' in pair) {
      refuse(`read:${pair.error.message}`, pair.error);
      return false;
    }
    const digest = pairDigest(pair.cert, pair.key);
    if (digest === current.digest) {
      refused = suspect = undefined;
      warnExpiry();
      return false;
    }
    if (digest === refused) return false;
    let next: TlsCredentials;
    try {
      next = parseTlsCredentials(pair.cert, pair.key, files);
    } catch (err) {
      refuse(digest, err as Error);
      return false;
    }
    current = next;
    refused = suspect = undefined;
    expiryWarned = false;
    for (const listener of listeners) {
      try {
        listener(next);
      } catch (err) {
        log.error({ err }, 'TLS certificate reload: a listener refused the new certificate');
      }
    }
    log.info({ ...describeCertificate(next), files }, 'TLS certificate reloaded: new connections get it');
    warnExpiry();
    return true;
  }

  const schedule = () => {
    if (closed) return;
    clearTimeout(settle);
    settle = setTimeout(check, settleMs);
    settle.unref();
  };

  // The directories of the files, and of their targets when they are symbolic links: renewals replace
  // files by renaming (certbot swaps the links in live/, Kubernetes a `..data` link), which a watch of the
  // file itself would not follow.
  const dirs = new Set<string>();
  for (const file of [files.certFile, files.keyFile]) {
    dirs.add(path.dirname(path.resolve(file)));
    try {
      dirs.add(path.dirname(realpathSync(file)));
    } catch {
      // Read at start, so it exists; a race with a renewal only loses the target's directory.
    }
  }
  const watchers: FSWatcher[] = [];
  for (const dir of dirs) {
    try {
      const w = watch(dir, { persistent: false }, schedule);
      w.on('error', (err) => {
        log.warn({ err, dir }, 'TLS certificate directory no longer watched; the periodic check continues');
        w.close();
      });
      watchers.push(w);
    } catch (err) {
      log.warn(
        { err, dir },
        'TLS certificate directory cannot be watched; renewals are seen by the periodic check only',
      );
    }
  }
  const poll = setInterval(check, options.intervalMs);
  poll.unref();

  return {
    current: () => current,
    onChange: (listener) => void listeners.push(listener),
    check,
    close() {
      closed = true;
      clearInterval(poll);
      clearTimeout(settle);
      clearTimeout(retry);
      for (const w of watchers) w.close();
    },
  };
}
