import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { settingsFromConfig } from '../../src/composition/settings.ts';

describe('config', () => {
  it('applies the documented defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      HOST: '0.0.0.0',
      HTTP_PORT: 8080,
      MQTT_PORT: 1883,
      TCP_PORT: 28801,
      DATA_DIR: './data',
      LOG_LEVEL: 'info',
    });
    expect(c.DATABASE_URL).toBeUndefined();
    expect(c.PLATFORM_TOKEN).toBeUndefined();
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('waits for an ingest batch to fill only on the embedded database, unless the setting says otherwise', () => {
    const delay = (env: Record<string, string>, driver: 'postgres' | 'pglite') =>
      settingsFromConfig(loadConfig(env), driver).services.ingestBatchDelayMs;
    expect(loadConfig({}).INGEST_BATCH_DELAY_MS).toBeUndefined();
    expect([delay({}, 'postgres'), delay({}, 'pglite'), delay({ INGEST_BATCH_DELAY_MS: ' ' }, 'pglite')]).toEqual([
      0, 5, 5,
    ]);
    expect([
      delay({ INGEST_BATCH_DELAY_MS: '7' }, 'postgres'),
      delay({ INGEST_BATCH_DELAY_MS: '0' }, 'pglite'),
    ]).toEqual([7, 0]);
  });

  it('treats empty variables as unset', () => {
    const c = loadConfig({ DATABASE_URL: '', JWT_SECRET: '  ', PLATFORM_TOKEN: '' });
    expect([c.DATABASE_URL, c.JWT_SECRET, c.PLATFORM_TOKEN]).toEqual([undefined, undefined, undefined]);
  });

  it('requires JWT_SECRET in production', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(ConfigError);
    expect(() => loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(32) })).not.toThrow();
  });

  it('rejects short secrets, bad ports and foreign database URLs with the variable named', () => {
    expect(() => loadConfig({ JWT_SECRET: 'short' })).toThrow(/JWT_SECRET/);
    expect(() => loadConfig({ HTTP_PORT: '70000' })).toThrow(/HTTP_PORT/);
    expect(() => loadConfig({ DATABASE_URL: 'mysql://localhost/x' })).toThrow(/DATABASE_URL/);
    expect(() => loadConfig({ PLATFORM_TOKEN: 'tiny' })).toThrow(/PLATFORM_TOKEN/);
  });

  it('reads the telemetry and alarm settings, with defaults, and names a bad one', () => {
    expect(loadConfig({})).toMatchObject({
      HISTORY_RETENTION_DAYS: 365,
      HISTORY_COMPRESS_AFTER_DAYS: 7,
      HISTORY_CHUNK_HOURS: 24,
      INGEST_BATCH_SIZE: 5000,
      INGEST_MAX_PENDING: 100_000,
      INGEST_CONCURRENCY: 1,
      ALARM_WEBHOOK_TIMEOUT_MS: 5000,
      ALARM_WEBHOOK_ATTEMPTS: 5,
      ALARM_WEBHOOK_BACKOFF_MS: 2000,
    });
    expect(loadConfig({ HISTORY_RETENTION_DAYS: '0', INGEST_CONCURRENCY: '4' })).toMatchObject({
      HISTORY_RETENTION_DAYS: 0,
      INGEST_CONCURRENCY: 4,
    });
    expect(() => loadConfig({ INGEST_BATCH_SIZE: '0' })).toThrow(/INGEST_BATCH_SIZE/);
    expect(() => loadConfig({ ALARM_WEBHOOK_ATTEMPTS: 'many' })).toThrow(/ALARM_WEBHOOK_ATTEMPTS/);
    expect(() => loadConfig({ HISTORY_CHUNK_HOURS: '0' })).toThrow(/HISTORY_CHUNK_HOURS/);
  });
});

describe('cluster mode settings (docs/cluster.md §1)', () => {
  const pg = 'postgres://u@db:5432/iot';
  const secret = 'x'.repeat(32);
  it('takes NATS_URL with PostgreSQL and a shared JWT_SECRET, and defaults the rest', () => {
    const c = loadConfig({ NATS_URL: 'nats://n1:4222, nats://n2:4222', DATABASE_URL: pg, JWT_SECRET: secret });
    expect(c).toMatchObject({ CLUSTER_NAME: 'iot', CLUSTER_LEASE_MS: 8_000, NATS_KV_REPLICAS: 1 });
    expect(c.NODE_ID).toBeUndefined();
    expect(loadConfig({}).NATS_URL).toBeUndefined();
  });

  it('refuses cluster mode on the embedded database, naming both variables', () => {
    expect(() => loadConfig({ NATS_URL: 'nats://n1:4222', JWT_SECRET: secret })).toThrow(
      /NATS_URL: cluster mode needs PostgreSQL: set DATABASE_URL/,
    );
  });

  it('refuses cluster mode without a shared JWT_SECRET', () => {
    expect(() => loadConfig({ NATS_URL: 'nats://n1:4222', DATABASE_URL: pg })).toThrow(
      /JWT_SECRET: is required with NATS_URL/,
    );
  });

  it.each([
    ['NATS_URL', 'http://n1:4222'],
    ['NATS_URL', 'nats://a b:4222'],
    ['CLUSTER_NAME', 'a.b'],
    ['CLUSTER_NAME', 'x>'],
    ['NODE_ID', 'node 1'],
    ['NODE_ID', 'n*'],
    ['CLUSTER_LEASE_MS', '60000'],
    ['NATS_KV_REPLICAS', '0'],
  ])('refuses %s=%s (it names subjects and buckets, or is out of range)', (name, value) => {
    expect(() =>
      loadConfig({ NATS_URL: 'nats://n1:4222', DATABASE_URL: pg, JWT_SECRET: secret, [name]: value }),
    ).toThrow(new RegExp(`${name}:`));
  });
});
