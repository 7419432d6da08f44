import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext } from 'node:tls';
import { ConfigError } from '../config.ts';

/**
 * The server's certificate and key (docs/tls.md §1), read from TLS_CERT_FILE and TLS_KEY_FILE and
 * checked before anything listens: a file that cannot be read, a file without a PEM certificate or
 * key, or a key that does not belong to the certificate stops the start with a message naming the
 * variable (a ConfigError, printed without a stack trace); at a reload (reloader.ts) the same checks
 * keep the pair in use.
 */
export interface TlsCredentials {
  /** The files as read (the certificate file may hold the chain after the server's certificate). */
  readonly cert: Buffer;
  readonly key: Buffer;
  /** For sockets wrapped at accept (MQTT over TLS, raw TCP over TLS). */
  readonly context: SecureContext;
  /** The server's own (first) certificate. */
  readonly certificate: CertificateInfo;
  /** Certificates in the file: the server's plus its chain. */
  readonly chainLength: number;
  /** Hash of both files: a reload compares it to skip files that did not change. */
  readonly digest: string;
}

export interface CertificateInfo {
  subject: string;
  issuer: string;
  subjectAltName: string | undefined;
  serialNumber: string;
  fingerprint256: string;
  validFrom: string;
  validTo: string;
  /** ms since the epoch */
  expiresAt: number;
}

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

/** A certificate/key problem; a ConfigError, so the start stops with the message only (src/main.ts). */
export class TlsFileError extends ConfigError {
  override name = 'TlsFileError';
}

function readPem(variable: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES' || code === 'EPERM'
          ? "permission denied (the server's user must be able to read it)"
          : code === 'EISDIR'
            ? 'it is a directory'
            : (err as Error).message;
    throw new TlsFileError(`${variable}: cannot read ${file}: ${why}`);
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Digest of a pair of files as read (reloader.ts compares it to skip unchanged files). */
export function pairDigest(cert: Buffer, key: Buffer): string {
  return createHash('sha256').update(cert).update('\0').update(key).digest('hex');
}

/** Checks a certificate file and key file's contents and builds their TLS context. */
export function parseTlsCredentials(cert: Buffer, key: Buffer, files: TlsFiles): TlsCredentials {
  const pems = cert.toString('utf8').match(PEM_CERT) ?? [];
  if (pems.length === 0)
    throw new TlsFileError(`TLS_CERT_FILE: ${files.certFile} holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(pems[0]!);
    for (const pem of pems.slice(1)) new X509Certificate(pem);
  } catch (err) {
    throw new TlsFileError(
      `TLS_CERT_FILE: ${files.certFile}: a certificate cannot be parsed (${(err as Error).message})`,
    );
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key, format: 'pem' });
  } catch (err) {
    const message = (err as Error).message;
    const why =
      /passphrase|encrypted/i.test(message) || /ENCRYPTED/.test(key.toString('utf8'))
        ? "the key is encrypted (give an unencrypted key, readable only by the server's user)"
        : `no PEM private key (${message})`;
    throw new TlsFileError(`TLS_KEY_FILE: ${files.keyFile}: ${why}`);
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new TlsFileError(
      `TLS_KEY_FILE: ${files.keyFile} is not the key of the certificate in TLS_CERT_FILE (${files.certFile}, ${leaf.subject.replace(/\n/g, ', ')})`,
    );
  }
  let context: SecureContext;
  try {
    context = createSecureContext({ cert, key });
  } catch (err) {
    throw new TlsFileError(
      `TLS_CERT_FILE/TLS_KEY_FILE: ${files.certFile} and ${files.keyFile} are not usable together (${(err as Error).message})`,
    );
  }
  return {
    cert,
    key,
    context,
    chainLength: pems.length,
    digest: pairDigest(cert, key),
    certificate: {
      subject: leaf.subject.replace(/\n/g, ', '),
      issuer: leaf.issuer.replace(/\n/g, ', '),
      subjectAltName: leaf.subjectAltName,
      serialNumber: leaf.serialNumber,
      fingerprint256: leaf.fingerprint256,
      validFrom: leaf.validFrom,
      validTo: leaf.validTo,
      expiresAt: Date.parse(leaf.validTo),
    },
  };
}

/** Reads and checks TLS_CERT_FILE and TLS_KEY_FILE (throws TlsFileError naming the variable). */
export function readTlsCredentials(files: TlsFiles): TlsCredentials {
  return parseTlsCredentials(readPem('TLS_CERT_FILE', files.certFile), readPem('TLS_KEY_FILE', files.keyFile), files);
}

/** Reads both files as they are now (reloader.ts), or the error of the one that cannot be read. */
export function readPair(files: TlsFiles): { cert: Buffer; key: Buffer } | { error: TlsFileError } {
  try {
    return { cert: readPem('TLS_CERT_FILE', files.certFile), key: readPem('TLS_KEY_FILE', files.keyFile) };
  } catch (err) {
    return { error: err as TlsFileError };
  }
}
