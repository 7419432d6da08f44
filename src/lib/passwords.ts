import { hash, verify } from '@node-rs/argon2';

/** Argon2id with the library's defaults (OWASP-recommended parameters). */
export function hashSecret(secret: string): Promise<string> {
  return hash(secret);
}

/** Constant-time verification; a malformed hash verifies as false rather than throwing. */
export async function verifySecret(hashed: string, secret: string): Promise<boolean> {
  try {
    return await verify(hashed, secret);
  } catch {
    return false;
  }
}
