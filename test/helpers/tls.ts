import { execFileSync } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import { tcpSocketsOf } from './proc-sockets.ts';

/**
 * Certificates for TLS tests, made with the openssl CLI in `dir`: a CA of the test's own and server
 * certificates it signs for localhost and 127.0.0.1 (docs/tls.md §5 shows the same commands).
 */
export function makeCa(dir: string) {
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=iot-cloud test CA');
  writeFileSync(
    path.join(dir, 'server.ext'),
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n',
  );
  const ca = readFileSync(path.join(dir, 'ca.crt'));
  return {
    ca,
    /** A new key and certificate `<name>.key`/`<name>.crt` (the certificate followed by the CA: a chain). */
    issue(name: string): { cert: Buffer; key: Buffer } {
      openssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=localhost');
      openssl(
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        'ca.crt',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-out',
        `${name}.leaf.crt`,
        '-days',
        '2',
        '-extfile',
        'server.ext',
      );
      const cert = Buffer.concat([readFileSync(path.join(dir, `${name}.leaf.crt`)), ca]);
      writeFileSync(path.join(dir, `${name}.crt`), cert);
      return { cert, key: readFileSync(path.join(dir, `${name}.key`)) };
    },
  };
}

/** Replaces a file as renewal tools do: written next to it, then renamed over it. */
export function replaceAtomically(file: string, content: Buffer) {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, content);
  renameSync(tmp, file);
}

/** The serial number of the certificate a TLS port presents (verified against `ca`; undefined = the system's CAs). */
export function servedSerial(port: number, ca: Buffer | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ...(ca ? { ca } : {}) }, () => {
      const serial = s.getPeerCertificate().serialNumber;
      s.destroy();
      resolve(serial);
    });
    s.once('error', reject);
  });
}

/** An HTTPS request (JSON in and out); `ca` undefined = only the system's CAs are trusted. */
export function httpsJson(
  url: string,
  options: { method?: string; token?: string; body?: unknown; ca?: Buffer; headers?: Record<string, string> } = {},
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- API JSON
): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    const req = https.request(
      url,
      {
        method: options.method ?? 'GET',
        ...(options.ca ? { ca: options.ca } : {}),
        headers: {
          ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
          ...(payload ? { 'content-type': 'application/json' } : {}),
          ...options.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // not JSON (e.g. /docs)
          }
          resolve({ status: res.statusCode ?? 0, body });
        });
      },
    );
    req.once('error', reject);
    req.end(payload);
  });
}

/** TCP ports a process listens on, ascending. */
export function listeningPorts(pid: number): number[] {
  return [
    ...new Set(
      tcpSocketsOf(pid)
        .filter((s) => s.listening)
        .map((s) => s.local),
    ),
  ].sort((a, b) => a - b);
}
