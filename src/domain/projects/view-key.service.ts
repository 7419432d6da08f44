import { Duplicate } from '../../db/errors.ts';
import type { ViewKeysRepository } from '../../db/repositories/view-keys.repository.ts';
import { NotFound } from '../../errors.ts';
import { randomToken } from '../../lib/ids.ts';
import { createMachineSecrets, type MachineSecrets } from '../../lib/passwords.ts';
import type { Scope } from '../auth/principal.ts';
import type { EventBus } from '../events/event-bus.ts';

export interface ViewKeyServiceDeps {
  clock?: () => number;
  /** Told when the secret changes, so subscribers of the old one are disconnected. */
  bus?: Pick<EventBus, 'emit'>;
  viewKeys: ViewKeysRepository;
  /** How the view secret is hashed and verified (passwords.ts); default: argon2id, as without a server secret. */
  machineSecrets?: MachineSecrets;
}

/** Device access tokens are 20 characters: a 16-character MQTT username is a view key. */
export const VIEW_KEY_LENGTH = 16;
const VIEW_SECRET_LENGTH = 32;
/** Longer inputs cannot be a key or secret we issued; refusing them early keeps hashing bounded. */
const MAX_INPUT = 256;

/**
 * The project's data-view key and secret: the MQTT username/password of application subscriptions
 * (device-protocol.md §9). The key appears in every subscribed topic, so it stays stable across
 * secret rotations unless the caller asks for a new one; the secret is shown once and stored hashed.
 */
export function createViewKeyService({
  clock = Date.now,
  bus,
  viewKeys,
  machineSecrets = createMachineSecrets(undefined),
}: ViewKeyServiceDeps) {
  return {
    async get(scope: Scope) {
      const row = await viewKeys.byProject(scope.projectId);
      if (!row) throw new NotFound('Project');
      return { view_key: row.viewKey, has_secret: row.viewSecretHash !== null };
    },

    /** Creates the key if there is none (or `rotate_key`), and always a new secret. */
    async issue(scope: Scope, opts: { rotate_key?: boolean } = {}) {
      const row = await viewKeys.byProject(scope.projectId);
      if (!row) throw new NotFound('Project');
      const viewSecret = randomToken(VIEW_SECRET_LENGTH);
      const viewSecretHash = await machineSecrets.hash(viewSecret);
      const newKey = opts.rotate_key === true || row.viewKey === null;
      // A 16-character key collides with another project's almost never; retry rather than fail if it does.
      for (let attempt = 0; ; attempt++) {
        const viewKey = newKey ? randomToken(VIEW_KEY_LENGTH) : row.viewKey!;
        try {
          const ok = await viewKeys.set(scope.projectId, {
            ...(newKey ? { viewKey } : {}),
            viewSecretHash,
            updateTime: clock(),
          });
          if (!ok) throw new NotFound('Project');
          // Subscribers logged in with the old secret (or key) are disconnected at once.
          bus?.emit('project.viewers_revoked', { projectId: scope.projectId });
          return { view_key: viewKey, view_secret: viewSecret };
        } catch (err) {
          if (!newKey || attempt >= 2 || !(err instanceof Duplicate && err.what === 'view_key')) throw err;
        }
      }
    },

    /** For the broker: the project a view key and secret belong to, or undefined when they do not match. */
    async verify(viewKey: string, secret: string): Promise<{ projectId: string } | undefined> {
      // Issued keys and secrets are printable ASCII: other text cannot match and never reaches the database.
      if (
        viewKey.length > MAX_INPUT ||
        secret.length > MAX_INPUT ||
        !/^[\x21-\x7e]+$/.test(viewKey) ||
        !/^[\x21-\x7e]+$/.test(secret)
      )
        return undefined;
      const row = await viewKeys.byViewKey(viewKey);
      if (!row?.viewSecretHash) {
        // An unknown key costs the same verification as a known one, so timing does not reveal keys.
        machineSecrets.burn(secret);
        return undefined;
      }
      const { ok, rehash } = await machineSecrets.verify(row.viewSecretHash, secret);
      if (!ok) return undefined;
      if (rehash) await viewKeys.replaceSecretHash(row.projectId, row.viewSecretHash, rehash);
      return { projectId: row.projectId };
    },
  };
}
export type ViewKeyService = ReturnType<typeof createViewKeyService>;
