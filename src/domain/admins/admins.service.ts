import { Duplicate } from '../../db/errors.ts';
import { type AdminRow, type AdminsRepository } from '../../db/repositories/admins.repository.ts';
import { Conflict, NotFound, StateConflict } from '../../errors.ts';
import { newId } from '../../lib/ids.ts';
import { hashSecret } from '../../lib/passwords.ts';
import type { AuthService } from '../auth/auth.service.ts';
import type { Scope } from '../auth/principal.ts';

export interface AdminsServiceDeps {
  auth: Pick<AuthService, 'forget'>;
  clock?: () => number;
  admins: AdminsRepository;
}

export interface CreateAdminInput {
  account: string;
  password: string;
  name?: string;
  email?: string;
  tags?: Record<string, string>;
}

export interface AdminInfoPatch {
  name?: string;
  email?: string;
  tags?: Record<string, string>;
}

/** The administrator object of http-api.md §3 `GET /api/v1/admin`. */
const adminView = (a: AdminRow) => ({ id: a.id, account: a.account, name: a.name, email: a.email, tags: a.tags });

/** Administrator accounts of a project: who may `admin_login` (http-api.md §2, §4). */
export function createAdminsService({ auth, clock = Date.now, admins }: AdminsServiceDeps) {
  async function mustGet(scope: Scope, id: string) {
    const row = await admins.get(scope.projectId, id);
    if (!row) throw new NotFound('Administrator');
    return row;
  }

  return {
    /** The calling administrator (the id comes from an admin token). */
    async me(scope: Scope, adminId: string) {
      return adminView(await mustGet(scope, adminId));
    },

    async list(scope: Scope) {
      const rows = await admins.list(scope.projectId);
      return { items: rows.map((a) => ({ ...adminView(a), create_time: a.createTime })) };
    },

    async create(scope: Scope, input: CreateAdminInput) {
      const now = clock();
      const id = newId(now);
      try {
        await admins.insert({
          id,
          projectId: scope.projectId,
          account: input.account,
          name: input.name ?? '',
          email: input.email ?? '',
          tags: input.tags ?? {},
          passwordHash: await hashSecret(input.password),
          createTime: now,
          updateTime: now,
        });
      } catch (err) {
        if (err instanceof Duplicate && err.what === 'account') {
          throw new Conflict('account is already used by another administrator of the project', [
            { path: 'account', message: 'already exists' },
          ]);
        }
        throw err;
      }
      return { id, account: input.account };
    },

    /** `tags` replaces the whole map. */
    async updateInfo(scope: Scope, id: string, patch: AdminInfoPatch) {
      const ok = await admins.update(scope.projectId, id, {
        ...(patch.name !== undefined ? { name: patch.name } : {}),
        ...(patch.email !== undefined ? { email: patch.email } : {}),
        ...(patch.tags !== undefined ? { tags: patch.tags } : {}),
        updateTime: clock(),
      });
      if (!ok) throw new NotFound('Administrator');
    },

    async setPassword(scope: Scope, id: string, password: string) {
      await mustGet(scope, id);
      const now = clock();
      const ok = await admins.update(scope.projectId, id, {
        passwordHash: await hashSecret(password),
        credentialsTime: now,
        updateTime: now,
      });
      auth.forget('admin', id);
      if (!ok) throw new NotFound('Administrator');
    },

    /** A project always keeps one administrator; the deleted one's tokens stop working at once. */
    async delete(scope: Scope, id: string) {
      const outcome = await admins.deleteUnlessLast(scope.projectId, id);
      if (outcome === 'missing') throw new NotFound('Administrator');
      if (outcome === 'last') throw new StateConflict("Cannot delete the project's last administrator");
      auth.forget('admin', id);
    },
  };
}
export type AdminsService = ReturnType<typeof createAdminsService>;
