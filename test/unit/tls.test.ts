import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { readTlsCredentials, TlsFileError } from '../../src/tls/credentials.ts';
import { createTlsReloader, type TlsReloader } from '../../src/tls/reloader.ts';
import { makeCa, replaceAtomically } from '../helpers/tls.ts';

/** TLS settings (docs/tls.md §3), certificate checks (§1) and the reloader's decisions (§4). */
const dir = mkdtempSync(path.join(os.tmpdir(), 'iot-tls-unit-'));
const ca = makeCa(dir);
const a = ca.issue('a');
const b = ca.issue('b');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('TLS settings', () => {
  const files = { TLS_CERT_FILE: '/etc/x/fullchain.pem', TLS_KEY_FILE: '/etc/x/privkey.pem' };

  it('without files: no TLS port; with them: 8443, 8883 and 28802 unless set; plaintext ports unchanged', () => {
    expect(loadConfig({})).toMatchObject({
      HTTP_PORT: 8080,
      MQTT_PORT: 1883,
      TCP_PORT: 28801,
      HTTPS_PORT: 'off',
      MQTTS_PORT: 'off',
      TCPS_PORT: 'off',
    });
    expect(loadConfig(files)).toMatchObject({
      HTTP_PORT: 8080,
      HTTPS_PORT: 8443,
      MQTTS_PORT: 8883,
      TCPS_PORT: 28802,
      TLS_RELOAD_INTERVAL_MS: 60_000,
    });
    expect(loadConfig({ ...files, HTTPS_PORT: '443', MQTTS_PORT: '0', TCPS_PORT: 'off' })).toMatchObject({
      HTTPS_PORT: 443,
      MQTTS_PORT: 0,
      TCPS_PORT: 'off',
    });
  });

  it('`off` (any case) turns a plaintext listener off; 0 stays "any free port"; an empty value stays 0', () => {
    expect(loadConfig({ ...files, HTTP_PORT: 'off', MQTT_PORT: 'OFF', TCP_PORT: ' Off ' })).toMatchObject({
      HTTP_PORT: 'off',
      MQTT_PORT: 'off',
      TCP_PORT: 'off',
    });
    expect(loadConfig({ MQTT_PORT: '0', TCP_PORT: '' })).toMatchObject({ MQTT_PORT: 0, TCP_PORT: 0 });
  });

  it('refuses half a pair, TLS ports without files, and no listener for the API', () => {
    expect(() => loadConfig({ TLS_CERT_FILE: '/c.pem' })).toThrow(/TLS_KEY_FILE: is required with TLS_CERT_FILE/);
    expect(() => loadConfig({ TLS_KEY_FILE: '/k.pem' })).toThrow(/TLS_CERT_FILE: is required with TLS_KEY_FILE/);
    expect(() => loadConfig({ MQTTS_PORT: '8883' })).toThrow(/MQTTS_PORT: needs TLS_CERT_FILE and TLS_KEY_FILE/);
    expect(() => loadConfig({ HTTP_PORT: 'off' })).toThrow(/HTTP_PORT: is off and HTTPS is not on/);
    expect(() => loadConfig({ ...files, HTTP_PORT: 'off', HTTPS_PORT: 'off' })).toThrow(
      /HTTP_PORT: is off and HTTPS is not on/,
    );
    expect(() => loadConfig({ HTTP_PORT: 'none' })).toThrow(
      /HTTP_PORT: must be a port number \(0-65535, 0 = any free port\) or "off"/,
    );
    expect(() => loadConfig({ ...files, HTTPS_PORT: '65536' })).toThrow(/HTTPS_PORT: must be a port number/);
    // Without TLS, `off` for a TLS port is harmless.
    expect(loadConfig({ MQTTS_PORT: 'off' }).MQTTS_PORT).toBe('off');
  });
});

describe('certificate checks', () => {
  it('reads a chain and describes its first certificate', () => {
    const c = readTlsCredentials({ certFile: path.join(dir, 'a.crt'), keyFile: path.join(dir, 'a.key') });
    expect(c.chainLength).toBe(2);
    expect(c.certificate).toMatchObject({
      subject: 'CN=localhost',
      issuer: 'CN=iot-cloud test CA',
      subjectAltName: 'DNS:localhost, IP Address:127.0.0.1',
    });
    expect(c.certificate.expiresAt).toBeGreaterThan(Date.now());
  });

  it('names the variable and the file for every problem', () => {
    const read = (cert: string, key: string) => () =>
      readTlsCredentials({ certFile: path.join(dir, cert), keyFile: path.join(dir, key) });
    expect(read('missing.crt', 'a.key')).toThrow(TlsFileError);
    expect(read('missing.crt', 'a.key')).toThrow(/^TLS_CERT_FILE: cannot read .*missing\.crt: no such file$/);
    expect(read('a.crt', 'missing.key')).toThrow(/^TLS_KEY_FILE: cannot read .*missing\.key: no such file$/);
    expect(read('a.key', 'a.key')).toThrow(/^TLS_CERT_FILE: .*a\.key holds no PEM certificate/);
    expect(read('a.crt', 'b.key')).toThrow(
      /^TLS_KEY_FILE: .*b\.key is not the key of the certificate in TLS_CERT_FILE/,
    );
    writeFileSync(path.join(dir, 'broken.crt'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    expect(read('broken.crt', 'a.key')).toThrow(/^TLS_CERT_FILE: .*broken\.crt: a certificate cannot be parsed/);
    expect(read('.', 'a.key')).toThrow(/^TLS_CERT_FILE: cannot read .*: it is a directory$/);
    execFileSync('openssl', ['pkcs8', '-topk8', '-in', 'a.key', '-out', 'a.enc.key', '-passout', 'pass:secret'], {
      cwd: dir,
      stdio: 'ignore',
    });
    expect(read('a.crt', 'a.enc.key')).toThrow(/^TLS_KEY_FILE: .*a\.enc\.key: the key is encrypted/);
  });
});

describe('reloader', () => {
  let reloader: TlsReloader | undefined;
  afterEach(() => reloader?.close());

  /** A live/ directory of symbolic links into archive/, as certbot keeps it. */
  function certbotLayout() {
    const root = mkdtempSync(path.join(dir, 'le-'));
    mkdirSync(path.join(root, 'archive'));
    mkdirSync(path.join(root, 'live'));
    writeFileSync(path.join(root, 'archive', 'fullchain1.pem'), a.cert);
    writeFileSync(path.join(root, 'archive', 'privkey1.pem'), a.key);
    symlinkSync('../archive/fullchain1.pem', path.join(root, 'live', 'fullchain.pem'));
    symlinkSync('../archive/privkey1.pem', path.join(root, 'live', 'privkey.pem'));
    const files = {
      certFile: path.join(root, 'live', 'fullchain.pem'),
      keyFile: path.join(root, 'live', 'privkey.pem'),
    };
    /** A renewal: new archive files, then each link in live/ replaced by a rename. */
    const renew = (n: number, pair: { cert: Buffer; key: Buffer }) => {
      writeFileSync(path.join(root, 'archive', `fullchain${n}.pem`), pair.cert);
      writeFileSync(path.join(root, 'archive', `privkey${n}.pem`), pair.key);
      for (const [name, target] of [
        ['fullchain.pem', `fullchain${n}.pem`],
        ['privkey.pem', `privkey${n}.pem`],
      ] as const) {
        const tmp = path.join(root, 'live', `${name}.new`);
        symlinkSync(`../archive/${target}`, tmp);
        renameSync(tmp, path.join(root, 'live', name));
      }
    };
    return { files, renew };
  }

  function logs() {
    const lines: Array<{ level: string; msg: string }> = [];
    const at = (level: string) => (_obj: unknown, msg?: string) => void lines.push({ level, msg: msg ?? '' });
    return { lines, logger: { info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug') } };
  }

  it('follows a certbot renewal through the watch of live/, and tells the listeners', async () => {
    const { files, renew } = certbotLayout();
    const log = logs();
    const seen: string[] = [];
    reloader = createTlsReloader({
      files,
      initial: readTlsCredentials(files),
      intervalMs: 3_600_000,
      logger: log.logger,
      settleMs: 50,
      retryMs: 200,
    });
    reloader.onChange((c) => seen.push(c.certificate.serialNumber));
    const before = reloader.current().certificate.serialNumber;
    renew(2, b);
    await expect.poll(() => reloader!.current().certificate.serialNumber, { timeout: 5_000 }).not.toBe(before);
    expect(seen).toEqual([reloader.current().certificate.serialNumber]);
    expect(log.lines.filter((l) => l.level === 'error')).toEqual([]);
    expect(log.lines.map((l) => l.msg)).toContain('TLS certificate reloaded: new connections get it');
  });

  it('a half-written renewal is not an error; a pair that stays wrong is logged once and the old one kept', async () => {
    const live = mkdtempSync(path.join(dir, 'plain-'));
    const files = { certFile: path.join(live, 'cert.pem'), keyFile: path.join(live, 'key.pem') };
    writeFileSync(files.certFile, a.cert);
    writeFileSync(files.keyFile, a.key);
    const log = logs();
    reloader = createTlsReloader({
      files,
      initial: readTlsCredentials(files),
      intervalMs: 3_600_000,
      logger: log.logger,
      settleMs: 20,
      retryMs: 300,
    });
    const serialA = reloader.current().certificate.serialNumber;
    // The certificate first, the key a moment later.
    replaceAtomically(files.certFile, b.cert);
    expect(reloader.check()).toBe(false);
    replaceAtomically(files.keyFile, b.key);
    await expect.poll(() => reloader!.current().certificate.serialNumber, { timeout: 5_000 }).not.toBe(serialA);
    await new Promise((r) => setTimeout(r, 500));
    expect(log.lines.filter((l) => l.level === 'error')).toEqual([]);

    // The key of another certificate, for good.
    const serialB = reloader.current().certificate.serialNumber;
    replaceAtomically(files.keyFile, a.key);
    await expect.poll(() => log.lines.filter((l) => l.level === 'error').length, { timeout: 5_000 }).toBe(1);
    expect(log.lines.find((l) => l.level === 'error')!.msg).toMatch(
      /^TLS certificate not reloaded, the previous one stays in use: TLS_KEY_FILE: .*key\.pem is not the key of the certificate/,
    );
    for (let i = 0; i < 3; i++) expect(reloader.check()).toBe(false);
    await new Promise((r) => setTimeout(r, 500));
    expect(log.lines.filter((l) => l.level === 'error')).toHaveLength(1);
    expect(reloader.current().certificate.serialNumber).toBe(serialB);
    // A file gone (a renewal tool deleting before writing): kept as well.
    rmSync(files.certFile);
    await expect.poll(() => log.lines.filter((l) => l.level === 'error').length, { timeout: 5_000 }).toBe(2);
    expect(log.lines.filter((l) => l.level === 'error')[1]!.msg).toMatch(
      /TLS_CERT_FILE: cannot read .*cert\.pem: no such file/,
    );
    expect(reloader.current().certificate.serialNumber).toBe(serialB);
  });

  it('finds a renewal by the periodic check alone, and does nothing while the files stay the same', async () => {
    const live = mkdtempSync(path.join(dir, 'poll-'));
    const files = { certFile: path.join(live, 'cert.pem'), keyFile: path.join(live, 'key.pem') };
    writeFileSync(files.certFile, a.cert);
    writeFileSync(files.keyFile, a.key);
    const log = logs();
    reloader = createTlsReloader({
      files,
      initial: readTlsCredentials(files),
      intervalMs: 1_000,
      logger: log.logger,
      settleMs: 3_600_000,
    });
    const changes: unknown[] = [];
    reloader.onChange((c) => changes.push(c));
    expect(reloader.check()).toBe(false);
    // Rewritten with the same content: no change.
    writeFileSync(files.certFile, a.cert);
    expect(reloader.check()).toBe(false);
    writeFileSync(files.certFile, b.cert);
    writeFileSync(files.keyFile, b.key);
    await expect.poll(() => changes.length, { timeout: 5_000 }).toBe(1);
  });

  it('warns when the certificate expires within 14 days, once per certificate', () => {
    const log = logs();
    const files = { certFile: path.join(dir, 'a.crt'), keyFile: path.join(dir, 'a.key') };
    const initial = readTlsCredentials(files);
    // The test certificates are valid for 2 days.
    reloader = createTlsReloader({ files, initial, intervalMs: 3_600_000, logger: log.logger });
    reloader.check();
    expect(log.lines.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual([
      'TLS certificate expires soon: renew it (the new files are picked up without a restart)',
    ]);
    reloader.close();
    const later = logs();
    reloader = createTlsReloader({
      files,
      initial,
      intervalMs: 3_600_000,
      logger: later.logger,
      clock: () => initial.certificate.expiresAt + 1,
    });
    expect(later.lines.map((l) => l.msg)).toEqual([
      'TLS certificate has expired: clients will refuse it; renew it (the new files are picked up without a restart)',
    ]);
  });
});
