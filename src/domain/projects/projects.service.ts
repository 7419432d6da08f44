import type { HistoryRepository } from '../../db/repositories/history.repository.ts';
import type { ProjectsRepository } from '../../db/repositories/projects.repository.ts';
import { NotFound } from '../../errors.ts';
import { newId, randomToken } from '../../lib/ids.ts';
import { createMachineSecrets, hashSecret, type MachineSecrets } from '../../lib/passwords.ts';
import type { AuthService } from '../auth/auth.service.ts';
import type { EventBus } from '../events/event-bus.ts';

export interface CreateProjectInput {
  name: string;
  descr?: string;
  tags?: Record<string, string>;
  device_quota?: number | null;
}

/** What the operator gets once, at creation: the only time the secret and password are shown. */
export interface CreatedProject {
  id: string;
  name: string;
  project_key: string;
  app: { app_id: string; access_key: string; secret_key: string };
  admin: { account: string; password: string };
}

export interface ProjectsServiceDeps {
  projects: ProjectsRepository;
  /** A project's history has no foreign key: it is removed with the project (history.repository.ts). */
  history: Pick<HistoryRepository, 'removeDevices'>;
  auth: Pick<AuthService, 'forgetProject'>;
  /** Told of a deleted project, so its live connections and cached logins end at once. */
  bus?: Pick<EventBus, 'emit'>;
  /** How the first app's secret is stored (a keyed hash with a server secret; passwords.ts). */
  machineSecrets?: MachineSecrets;
  clock?: () => number;
}

export function createProjectsService({
  projects,
  history,
  auth,
  bus,
  machineSecrets = createMachineSecrets(undefined),
  clock = Date.now,
}: ProjectsServiceDeps) {
  return {
    /** Creates a tenant with its first API app and its administrator account `admin`. */
    async create(input: CreateProjectInput): Promise<CreatedProject> {
      const now = clock();
      const id = newId(now);
      const projectKey = randomToken(24);
      const appId = newId(now);
      const accessKey = randomToken(20);
      const secretKey = randomToken(40);
      const password = randomToken(16);
      const [secretHash, passwordHash] = await Promise.all([machineSecrets.hash(secretKey), hashSecret(password)]);
      await projects.createWithOwner(
        {
          id,
          name: input.name,
          descr: input.descr ?? '',
          tags: input.tags ?? {},
          projectKey,
          deviceQuota: input.device_quota ?? null,
          createTime: now,
          updateTime: now,
        },
        { id: appId, projectId: id, name: 'default', accessKey, secretHash, createTime: now },
        {
          id: newId(now),
          projectId: id,
          account: 'admin',
          name: 'Administrator',
          passwordHash,
          createTime: now,
          updateTime: now,
        },
      );
      return {
        id,
        name: input.name,
        project_key: projectKey,
        app: { app_id: appId, access_key: accessKey, secret_key: secretKey },
        admin: { account: 'admin', password },
      };
    },

    async list() {
      const rows = await projects.list();
      return rows.map((r) => ({
        id: r.id,
        name: r.name,
        descr: r.descr,
        project_key: r.projectKey,
        create_time: r.createTime,
        device_count: r.deviceCount,
      }));
    },

    async get(projectId: string) {
      const row = await projects.byId(projectId);
      if (!row) throw new NotFound('Project');
      return { id: row.id, name: row.name, descr: row.descr, tags: row.tags };
    },

    async update(projectId: string, patch: { name?: string; descr?: string; tags?: Record<string, string> }) {
      const ok = await projects.update(projectId, { ...patch, updateTime: clock() });
      if (!ok) throw new NotFound('Project');
      return this.get(projectId);
    },

    /**
     * Deletes a project and all of its data. Its history goes first, by device, each statement on its own and
     * outside the project's delete: that locks the project's device rows, and a long history delete inside it
     * would hold them, and every ingest batch waiting on one. Best effort, as for a deleted device: a report
     * accepted in the moment of the delete may still be written after it.
     */
    async delete(projectId: string) {
      await history.removeDevices(await projects.deviceIds(projectId));
      if (!(await projects.delete(projectId))) throw new NotFound('Project');
      auth.forgetProject(projectId);
      bus?.emit('project.deleted', { projectId });
    },
  };
}
export type ProjectsService = ReturnType<typeof createProjectsService>;
