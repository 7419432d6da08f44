import type { GroupRow, GroupsRepository } from '../../db/repositories/groups.repository.ts';
import { BadRequest, NotFound, StateConflict } from '../../errors.ts';
import { newId } from '../../lib/ids.ts';
import type { Scope } from '../auth/principal.ts';

/** Levels of the group tree, roots included; deeper trees are refused (http-api.md §4, groups). */
export const MAX_GROUP_DEPTH = 16;

export interface GroupsServiceDeps {
  groups: GroupsRepository;
  clock?: () => number;
}

export interface CreateGroupInput {
  name: string;
  descr?: string;
  tags?: Record<string, string>;
  /** null or '' = a root group. */
  parent_id?: string | null;
}

export interface UpdateGroupInput {
  name?: string;
  descr?: string;
  /** Replaces the group's tags. */
  tags?: Record<string, string>;
  /** null or '' = make it a root; an id = move it under that group. */
  parent_id?: string | null;
}

export interface GroupNode {
  id: string;
  name: string;
  descr: string;
  tags: Record<string, string>;
  create_time: number;
  children: GroupNode[];
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

const tooDeep = () =>
  new BadRequest(`Device groups nest at most ${MAX_GROUP_DEPTH} levels deep`, [
    { path: 'parent_id', message: `the tree would be deeper than ${MAX_GROUP_DEPTH} levels` },
  ]);

/** Children in creation order (the rows come sorted by id, which is time-ordered). */
export function buildTree(rows: GroupRow[]): GroupNode[] {
  const nodes = new Map<string, GroupNode>();
  for (const r of rows) {
    nodes.set(r.id, { id: r.id, name: r.name, descr: r.descr, tags: r.tags, create_time: r.createTime, children: [] });
  }
  const roots: GroupNode[] = [];
  for (const r of rows) {
    const node = nodes.get(r.id)!;
    const parent = r.parentId ? nodes.get(r.parentId) : undefined;
    (parent ? parent.children : roots).push(node);
  }
  return roots;
}

/** The device-group tree and its membership rules (http-api.md §3 "Device groups", §4). */
export function createGroupsService({ groups, clock = Date.now }: GroupsServiceDeps) {
  return {
    async tree(scope: Scope) {
      return { items: buildTree(await groups.listAll(scope.projectId)) };
    },

    async get(scope: Scope, id: string) {
      const g = await groups.getWithCount(scope.projectId, id, scope.customerId);
      if (!g) throw new NotFound('Device group');
      return {
        id: g.id,
        name: g.name,
        descr: g.descr,
        tags: g.tags,
        parent_id: g.parentId,
        create_time: g.createTime,
        device_count: g.deviceCount,
      };
    },

    async create(scope: Scope, input: CreateGroupInput) {
      const now = clock();
      const id = newId(now);
      const parentId = input.parent_id || null;
      const row = {
        id,
        projectId: scope.projectId,
        parentId,
        name: input.name,
        descr: input.descr ?? '',
        tags: input.tags ?? {},
        createTime: now,
        updateTime: now,
      };
      if (!parentId) {
        await groups.insert(row);
      } else {
        await groups.withTreeLock(scope.projectId, async (tx) => {
          const chain = await groups.ancestry(scope.projectId, parentId, tx);
          if (!chain.length) throw new NotFound('Device group');
          if (chain.length + 1 > MAX_GROUP_DEPTH) throw tooDeep();
          await groups.insert(row, tx);
        });
      }
      return { id, name: input.name };
    },

    async update(scope: Scope, id: string, input: UpdateGroupInput) {
      const patch = {
        ...(input.name !== undefined ? { name: input.name } : {}),
        ...(input.descr !== undefined ? { descr: input.descr } : {}),
        ...(input.tags !== undefined ? { tags: input.tags } : {}),
        updateTime: clock(),
      };
      if (input.parent_id === undefined) {
        if (!(await groups.update(scope.projectId, id, patch))) throw new NotFound('Device group');
        return;
      }
      const parentId = input.parent_id || null;
      await groups.withTreeLock(scope.projectId, async (tx) => {
        if (!(await groups.get(scope.projectId, id, tx))) throw new NotFound('Device group');
        if (parentId) {
          const chain = await groups.ancestry(scope.projectId, parentId, tx);
          if (!chain.length) throw new NotFound('Device group');
          if (chain.includes(id)) {
            throw new BadRequest('A device group cannot be moved under itself or one of its descendants', [
              { path: 'parent_id', message: 'is the group itself or one of its descendants' },
            ]);
          }
          if (chain.length + (await groups.height(scope.projectId, id, tx)) > MAX_GROUP_DEPTH) throw tooDeep();
        }
        await groups.update(scope.projectId, id, { ...patch, parentId }, tx);
      });
    },

    /** Refuses to orphan devices or child groups: the caller empties the group first. */
    async delete(scope: Scope, id: string) {
      await groups.withTreeLock(scope.projectId, async (tx) => {
        if (!(await groups.get(scope.projectId, id, tx))) throw new NotFound('Device group');
        const usage = await groups.usage(scope.projectId, id, tx);
        const reasons = [
          ...(usage.devices ? [plural(usage.devices, 'device', 'devices')] : []),
          ...(usage.children ? [plural(usage.children, 'child group', 'child groups')] : []),
        ];
        if (reasons.length) throw new StateConflict(`Device group has ${reasons.join(' and ')}`);
        await groups.delete(scope.projectId, id, tx);
      });
    },
  };
}
export type GroupsService = ReturnType<typeof createGroupsService>;
