import { describe, expect, it } from 'vitest';
import {
  createMachineSecrets,
  HASH_CONCURRENCY,
  HASH_QUEUE,
  HashBusy,
  hashSecret,
  verifySecret,
} from '../../src/lib/passwords.ts';

describe('secrets hashing (src/lib/passwords.ts)', () => {
  it('machine secrets: HMAC form keyed by the server secret, constant answer for another key or secret', async () => {
    const m = createMachineSecrets('server-secret-0123456789abcdef0123456789');
    const stored = await m.hash('s3cret-value');
    expect(stored).toMatch(/^hmac-sha256\$[A-Za-z0-9_-]{43}$/);
    expect(await m.verify(stored, 's3cret-value')).toEqual({ ok: true });
    expect(await m.verify(stored, 's3cret-valuE')).toEqual({ ok: false });
    // Another server's key does not verify it, and without a key the HMAC form is never accepted.
    expect(
      await createMachineSecrets('another-secret-0123456789abcdef012345678').verify(stored, 's3cret-value'),
    ).toEqual({ ok: false });
    expect((await createMachineSecrets(undefined).verify(stored, 's3cret-value')).ok).toBe(false);
    expect(await m.verify('hmac-sha256$', 's3cret-value')).toEqual({ ok: false });
  });

  it('an argon2 hash of a machine secret verifies once more and comes back in the HMAC form', async () => {
    const m = createMachineSecrets('server-secret-0123456789abcdef0123456789');
    const old = await hashSecret('legacy-secret');
    const r = await m.verify(old, 'legacy-secret');
    expect(r).toEqual({ ok: true, rehash: await m.hash('legacy-secret') });
    expect(await m.verify(old, 'wrong')).toEqual({ ok: false });
  });

  it(`at most ${HASH_CONCURRENCY} argon2 verifications run at once and ${HASH_QUEUE} wait; more are refused as busy`, async () => {
    const hashed = await hashSecret('pw');
    const results = await Promise.allSettled(
      Array.from({ length: HASH_CONCURRENCY + HASH_QUEUE + 3 }, () => verifySecret(hashed, 'pw')),
    );
    const busy = results.filter((r) => r.status === 'rejected' && r.reason instanceof HashBusy);
    expect(busy).toHaveLength(3);
    expect(results.filter((r) => r.status === 'fulfilled' && r.value === true)).toHaveLength(
      HASH_CONCURRENCY + HASH_QUEUE,
    );
    // Every slot is given back.
    expect(
      await Promise.all(Array.from({ length: HASH_CONCURRENCY + HASH_QUEUE }, () => verifySecret(hashed, 'pw'))),
    ).not.toContain(false);
  });
});
