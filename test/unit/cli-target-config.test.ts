import { describe, expect, it } from 'vitest';
import { targetConfig } from '../../src/cli/command.ts';
import { ConfigError } from '../../src/config.ts';

/**
 * The operator CLI reads the server's environment (README "Projects (tenants)"): a TLS-only server
 * (docs/tls.md §3: HTTP_PORT=off with TLS_CERT_FILE and TLS_KEY_FILE) must not stop every command on
 * the "nothing would serve the API" rule, while a really broken environment still does.
 */
describe('CLI targetConfig', () => {
  const tlsOnly = {
    HTTP_PORT: 'off',
    TLS_CERT_FILE: '/etc/tls/fullchain.pem',
    TLS_KEY_FILE: '/etc/tls/privkey.pem',
    DATA_DIR: '/tmp/x',
  };

  it('accepts the environment of a TLS-only server', () => {
    const settings = targetConfig({}, tlsOnly);
    expect(settings.HTTP_PORT).toBe('off');
    expect(settings.DATA_DIR).toBe('/tmp/x');
  });

  it('still refuses HTTP_PORT=off without the TLS files', () => {
    expect(() => targetConfig({}, { HTTP_PORT: 'off', DATA_DIR: '/tmp/x' })).toThrow(ConfigError);
    expect(() => targetConfig({}, { HTTP_PORT: 'off', DATA_DIR: '/tmp/x' })).toThrow(
      /HTTP_PORT: is off and HTTPS is not on/,
    );
  });

  it('still refuses HTTP_PORT=off when HTTPS_PORT is off too', () => {
    expect(() => targetConfig({}, { ...tlsOnly, HTTPS_PORT: 'off' })).toThrow(/HTTP_PORT: is off/);
  });

  it('refuses half a TLS pair as the server would', () => {
    expect(() => targetConfig({}, { TLS_CERT_FILE: '/etc/tls/fullchain.pem' })).toThrow(/TLS_KEY_FILE: is required/);
  });
});
