import type { AppRow, AppsRepository } from '../../db/repositories/apps.repository.ts';
import { NotFound, StateConflict } from '../../errors.ts';
import { newId, randomToken } from '../../lib/ids.ts';
import { createMachineSecrets, type MachineSecrets } from '../../lib/passwords.ts';
import type { AuthService } from '../auth/auth.service.ts';
import type { Scope } from '../auth/principal.ts';

export interface AppsServiceDeps {
  auth: Pick<AuthService, 'forget'>;
  clock?: () => number;
  apps: AppsRepository;
  /** How `secret_key` is hashed (passwords.ts); default: argon2id, as without a server secret. */
  machineSecrets?: MachineSecrets;
}

/** The same credential sizes as a project's first app (projects.service.ts). */
const ACCESS_KEY_LENGTH = 20;
const SECRET_KEY_LENGTH = 40;

const appView = (a: AppRow) => ({ app_id: a.id, name: a.name, access_key: a.accessKey, create_time: a.createTime });

/**
 * API apps (http-api.md §2, §4): the integrator credentials that get `access_token`s. The secret is
 * shown once, when created or reset, and stored hashed (passwords.ts, MachineSecrets).
 */
export function createAppsService({
  auth,
  clock = Date.now,
  apps,
  machineSecrets = createMachineSecrets(undefined),
}: AppsServiceDeps) {
  return {
    async list(scope: Scope) {
      const rows = await apps.list(scope.projectId);
      return { items: rows.map(appView) };
    },

    async create(scope: Scope, input: { name: string }) {
      const now = clock();
      const id = newId(now);
      const accessKey = randomToken(ACCESS_KEY_LENGTH);
      const secretKey = randomToken(SECRET_KEY_LENGTH);
      await apps.insert({
        id,
        projectId: scope.projectId,
        name: input.name,
        accessKey,
        secretHash: await machineSecrets.hash(secretKey),
        createTime: now,
      });
      return { app_id: id, name: input.name, access_key: accessKey, secret_key: secretKey };
    },

    /**
     * A new secret for the same app and access key: the old secret no longer gets tokens, and the
     * tokens issued before the reset stop working (a reset is how a leaked secret is contained).
     */
    async resetSecret(scope: Scope, id: string) {
      const app = await apps.get(scope.projectId, id);
      if (!app) throw new NotFound('App');
      const secretKey = randomToken(SECRET_KEY_LENGTH);
      if (!(await apps.setSecret(scope.projectId, id, await machineSecrets.hash(secretKey), clock())))
        throw new NotFound('App');
      auth.forget('app', id);
      return { app_id: app.id, access_key: app.accessKey, secret_key: secretKey };
    },

    /** `admin_login` needs an app_id to find the project, so the last app cannot go. */
    async delete(scope: Scope, id: string) {
      const outcome = await apps.deleteUnlessLast(scope.projectId, id);
      if (outcome === 'missing') throw new NotFound('App');
      if (outcome === 'last')
        throw new StateConflict("Cannot delete the project's last API app: admin_login needs an app_id");
      auth.forget('app', id);
    },
  };
}
export type AppsService = ReturnType<typeof createAppsService>;
