import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { hash, verify } from '@node-rs/argon2';

/** Argon2id with the library's defaults (OWASP-recommended parameters). */
export function hashSecret(secret: string): Promise<string> {
  return hash(secret);
}

/** Too many argon2 verifications are running and waiting: the caller should answer "busy, retry". */
export class HashBusy extends Error {
  override name = 'HashBusy';
  constructor() {
    super('server busy: too many logins being checked');
  }
}

/**
 * Argon2 verifications running at once, and waiting beyond those; more are refused (HashBusy).
 * Each costs tens of milliseconds of a core and ~19 MiB: unbounded, a burst of logins would take
 * every core and the memory from every tenant.
 */
export const HASH_CONCURRENCY = 4;
export const HASH_QUEUE = 64;

let running = 0;
const waiting: Array<() => void> = [];

async function withHashSlot<T>(work: () => Promise<T>): Promise<T> {
  if (running >= HASH_CONCURRENCY) {
    if (waiting.length >= HASH_QUEUE) throw new HashBusy();
    await new Promise<void>((resolve) => waiting.push(resolve));
  } else running += 1;
  try {
    return await work();
  } finally {
    // The slot passes to the next waiter as is (running stays), or is freed.
    const next = waiting.shift();
    if (next) next();
    else running -= 1;
  }
}

/**
 * Constant-time verification; a malformed hash verifies as false rather than throwing. At most
 * HASH_CONCURRENCY run at once; throws HashBusy when HASH_QUEUE more are already waiting.
 */
export async function verifySecret(hashed: string, secret: string): Promise<boolean> {
  return withHashSlot(async () => {
    try {
      return await verify(hashed, secret);
    } catch {
      return false;
    }
  });
}

const HMAC_PREFIX = 'hmac-sha256$';

/**
 * Machine secrets (a project's view secret, an API app's `secret_key`) are random strings of 32+
 * characters issued by the server: no dictionary can guess them, so a slow hash protects nothing and
 * only makes every login (and every stranger's guess) cost tens of milliseconds of CPU. They are
 * stored as `hmac-sha256$<base64url>`: HMAC-SHA256 keyed with a key derived (HKDF-SHA256) from the
 * server secret (JWT_SECRET, or the one generated in DATA_DIR), so a copy of the database alone does
 * not let anyone test candidates. Hashes stored before (argon2id, `$argon2id$…`) still verify, and
 * the verification returns the HMAC form to store instead (migration on first use).
 */
export interface MachineSecrets {
  hash(secret: string): Promise<string>;
  /** Whether `secret` matches `stored`; `rehash` is set when it matched a hash of the old (argon2) form. */
  verify(stored: string, secret: string): Promise<{ ok: boolean; rehash?: string }>;
  /** The cost of a verification, for an unknown key: timing does not tell which keys exist. */
  burn(secret: string): void;
}

/**
 * Without a server secret (the CLI on PostgreSQL, some tests) machine secrets are hashed with
 * argon2id, which any server verifies and migrates on first use.
 */
export function createMachineSecrets(serverSecret: string | undefined): MachineSecrets {
  if (!serverSecret) {
    return {
      hash: hashSecret,
      verify: async (stored, secret) => ({
        ok: !stored.startsWith(HMAC_PREFIX) && (await verifySecret(stored, secret)),
      }),
      burn: () => {},
    };
  }
  const key = Buffer.from(hkdfSync('sha256', serverSecret, '', 'iot-cloud machine secret hmac', 32));
  const mac = (secret: string) => createHmac('sha256', key).update(secret, 'utf8').digest();
  const encode = (secret: string) => HMAC_PREFIX + mac(secret).toString('base64url');
  return {
    hash: async (secret) => encode(secret),
    async verify(stored, secret) {
      if (stored.startsWith(HMAC_PREFIX)) {
        const expected = Buffer.from(stored.slice(HMAC_PREFIX.length), 'base64url');
        const actual = mac(secret);
        return { ok: expected.length === actual.length && timingSafeEqual(expected, actual) };
      }
      const ok = await verifySecret(stored, secret);
      return ok ? { ok, rehash: encode(secret) } : { ok };
    },
    burn: (secret) => {
      timingSafeEqual(mac(secret), mac(''));
    },
  };
}
