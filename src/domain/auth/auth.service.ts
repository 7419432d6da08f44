import { timingSafeEqual } from 'node:crypto';
import type { AppsRepository } from '../../db/repositories/apps.repository.ts';
import type { CredentialsRepository } from '../../db/repositories/credentials.repository.ts';
import type { EventBus } from '../events/event-bus.ts';
import { TooManyRequests, Unauthorized } from '../../errors.ts';
import { createMachineSecrets, HashBusy, hashSecret, verifySecret, type MachineSecrets } from '../../lib/passwords.ts';
import type { Principal, PrincipalKind } from './principal.ts';

export interface AuthServiceDeps {
  credentials: CredentialsRepository;
  /** Apps' `secret_key`s migrate to the machine-secret form when they log in (passwords.ts). */
  apps?: Pick<AppsRepository, 'replaceSecretHash'>;
  machineSecrets?: MachineSecrets;
  /** How long "this principal still exists" is believed without asking the database. */
  cacheTtlMs?: number;
  clock?: () => number;
  /**
   * Told when a principal's tokens are revoked (`principal.revoked`): live event streams end. Heard back
   * from every node (docs/cluster.md §4): a revocation or a deleted project elsewhere empties the cache here.
   */
  bus?: Pick<EventBus, 'emit' | 'on'>;
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const BAD_APP = 'Invalid app_id, access_key or secret_key';
/** Too many argon2 checks at once (passwords.ts): the caller may retry in a second. */
const busy = (err: unknown): never => {
  if (err instanceof HashBusy) throw new TooManyRequests(err.message, 1);
  throw err;
};
const checkPassword = (hashed: string, password: string) => verifySecret(hashed, password).catch(busy);
const BAD_LOGIN = 'Invalid app_id, account or password';

/**
 * Logs principals in (http-api.md §2) and answers whether a token's principal still exists.
 * Unknown apps and accounts cost the same hash verification as known ones, so timing reveals nothing.
 */
export function createAuthService({
  credentials,
  apps,
  machineSecrets = createMachineSecrets(undefined),
  cacheTtlMs = 30_000,
  clock = Date.now,
  bus,
}: AuthServiceDeps) {
  /** principal → [credentials time, believed until]. */
  const alive = new Map<string, [number, number]>();
  let dummyHash: Promise<string> | undefined;
  const dropPrincipal = (kind: PrincipalKind, subjectId: string) => {
    for (const key of alive.keys()) if (key.startsWith(`${kind}:`) && key.endsWith(`:${subjectId}`)) alive.delete(key);
  };
  const dropProject = (projectId: string) => {
    for (const key of alive.keys()) if (key.includes(`:${projectId}:`)) alive.delete(key);
  };
  // Registered before the event streams' re-check of their tokens (they are built later): it finds the cache emptied.
  bus?.on('principal.revoked', ({ kind, subjectId }) => dropPrincipal(kind, subjectId));
  bus?.on('project.deleted', ({ projectId }) => dropProject(projectId));
  const burn = async (secret: string) => {
    dummyHash ??= hashSecret('dummy-password-for-timing');
    await checkPassword(await dummyHash, secret);
  };

  async function accountLogin(
    kind: 'admin' | 'customer',
    appId: string,
    account: string,
    password: string,
  ): Promise<Principal> {
    const app = await credentials.appById(appId);
    const row = app
      ? kind === 'admin'
        ? await credentials.adminByAccount(app.projectId, account)
        : await credentials.customerByAccount(app.projectId, account)
      : undefined;
    if (!app || !row) {
      await burn(password);
      throw new Unauthorized(BAD_LOGIN);
    }
    if (!(await checkPassword(row.passwordHash, password))) throw new Unauthorized(BAD_LOGIN);
    return { projectId: app.projectId, kind, subjectId: row.id };
  }

  return {
    async appLogin(input: { app_id: string; access_key: string; secret_key: string }): Promise<Principal> {
      const app = await credentials.appById(input.app_id);
      if (!app) {
        machineSecrets.burn(input.secret_key);
        throw new Unauthorized(BAD_APP);
      }
      const keyOk = safeEqual(app.accessKey, input.access_key);
      const secret = await machineSecrets.verify(app.secretHash, input.secret_key).catch(busy);
      if (!keyOk || !secret.ok) throw new Unauthorized(BAD_APP);
      if (secret.rehash) await apps?.replaceSecretHash(app.projectId, app.id, app.secretHash, secret.rehash);
      return { projectId: app.projectId, kind: 'app', subjectId: app.id };
    },

    adminLogin(input: { app_id: string; account: string; password: string }) {
      return accountLogin('admin', input.app_id, input.account, input.password);
    },

    customerLogin(input: { app_id: string; account: string; password: string }) {
      return accountLogin('customer', input.app_id, input.account, input.password);
    },

    /**
     * Whether a token issued at `issuedAt` (ms) for this principal is still good: the principal exists
     * and its secret or password has not changed since the token was issued.
     */
    async tokenValid(p: Principal, issuedAt: number): Promise<boolean> {
      const key = `${p.kind}:${p.projectId}:${p.subjectId}`;
      let entry = alive.get(key);
      if (!entry || entry[1] <= clock()) {
        const time = await credentials.credentialsTime(p.kind, p.projectId, p.subjectId);
        if (time === undefined) {
          alive.delete(key);
          return false;
        }
        if (alive.size > 100_000) alive.clear();
        entry = [time, clock() + cacheTtlMs];
        alive.set(key, entry);
      }
      return issuedAt >= entry[0];
    },

    /**
     * Tokens of a deleted principal, or issued before a credential change, stop working at once on this
     * node, and on the others as soon as they hear `principal.revoked`.
     */
    forget(kind: PrincipalKind, subjectId: string) {
      dropPrincipal(kind, subjectId);
      bus?.emit('principal.revoked', { kind, subjectId });
    },
    /** A deleted project's tokens (other nodes forget them on `project.deleted`). */
    forgetProject: dropProject,
  };
}
export type AuthService = ReturnType<typeof createAuthService>;
