import { and, desc, eq, getTableColumns, inArray, lt, sql, type Placeholder, type SQL } from 'drizzle-orm';
import { rowsOf, type Db, type Tx } from '../client.ts';
import { withCompiledRows } from '../row-mapper.ts';
import { inScope as scoped, type Scope } from '../scope.ts';
import { translating, type Translation } from '../errors.ts';
import { deviceGroupMembers, deviceGroups, devices, deviceTypes, projects } from '../schema/index.ts';

export type DeviceRow = typeof devices.$inferSelect;
export type NewDevice = typeof devices.$inferInsert;

export interface DeviceFilter {
  typeId?: string;
  /** Groups whose devices are listed; the service adds the sub-groups when asked. */
  groupIds?: string[];
  includeSubGroups?: boolean;
  online?: boolean;
  deviceKey?: string;
  /** Name contains it (any case) or device_key starts with it; matched literally (docs/http-api.md §3.4). */
  search?: string;
}

/** Makes user text literal inside a LIKE pattern (backslash is the escape character). */
export function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/**
 * No index serves "name contains": a btree cannot, and a pg_trgm GIN index would need the extension
 * created in a migration that both PostgreSQL (where CREATE EXTENSION may need rights the app's user
 * lacks) and the embedded PGlite (where it must be loaded into every instance) run alike. The
 * condition is checked row by row: a page of a common match stops as soon as it is full (~2 ms), a
 * rare match reads the whole project (~50 ms for page and count at 100k devices on PostgreSQL; the
 * service caches the count). Measured by bench/device-search.ts, figures in bench/README.md.
 */
function searchCondition(text: string): SQL {
  const literal = escapeLike(text);
  return sql`(${devices.name} ilike ${`%${literal}%`} escape '\\' or ${devices.deviceKey} like ${`${literal}%`} escape '\\')`;
}

const typeInfo = {
  typeName: deviceTypes.name,
  typeConnType: deviceTypes.connType,
  typeConnProtocol: deviceTypes.connProtocol,
};
export type DeviceWithType = DeviceRow & {
  typeName: string | null;
  typeConnType: string | null;
  typeConnProtocol: string | null;
};

/**
 * What a page of the list holds of each device: what its view shows (devices.service `deviceView`), not the
 * credentials and bookkeeping the list never answers: 14 columns a row to send, parse and map instead of 26.
 */
const listColumns = {
  id: devices.id,
  name: devices.name,
  descr: devices.descr,
  deviceKey: devices.deviceKey,
  deviceCode: devices.deviceCode,
  tags: devices.tags,
  createTime: devices.createTime,
  alarm: devices.alarm,
  activeTs: devices.activeTs,
  online: devices.online,
  typeId: devices.typeId,
};
export type DeviceListRow = Pick<DeviceWithType, keyof typeof listColumns | keyof typeof typeInfo>;

/** The device's group ids, sorted. */
const groupsOfDevice = sql<
  string[]
>`coalesce((select array_agg(m.group_id order by m.group_id) from ${deviceGroupMembers} m
  where m.device_id = ${devices.id} and m.project_id = ${devices.projectId}), '{}'::text[])`;

/** Restricts to the scope: the project always, and the customer's bound devices for customer tokens. */
const inScope = (scope: Scope): SQL => scoped(scope, { projectId: devices.projectId, deviceId: devices.id });

/** Devices in any of the groups (ids already resolved, sub-groups included when asked). */
function groupCondition(projectId: string, groupIds: string[]): SQL {
  const ids = sql.join(
    groupIds.map((g) => sql`${g}`),
    sql`, `,
  );
  return sql`exists (select 1 from ${deviceGroupMembers} m where m.device_id = ${devices.id} and m.project_id = ${projectId} and m.group_id in (${ids}))`;
}

/** The device's unique keys and references, as the named errors of its writes. */
const deviceErrors: Translation = {
  unique: {
    device_key: 'device_key',
    devices_project_code: 'device_code',
    gateway_address: 'gateway_address',
    access_token: 'access_token',
    view_token: 'view_token',
  },
  foreignKey: { type_id: 'device_type', gateway_id: 'gateway', project_id: 'project' },
};

/**
 * A scope whose values are placeholders, for statements prepared once: the same predicate as every
 * other read (src/db/scope.ts), bound to `projectId` (and `customerId`) at each run.
 */
const placeholderScope = (customer: boolean): Scope =>
  ({
    projectId: sql.placeholder('projectId'),
    ...(customer ? { customerId: sql.placeholder('customerId') } : {}),
  }) as unknown as Scope;

const scopeParams = (scope: Scope) => ({ projectId: scope.projectId, customerId: scope.customerId });

/**
 * Page sizes whose first and keyset pages run as statements of their own with the size in the text.
 * PostgreSQL plans a prepared statement once and reuses the plan only when that generic plan looks no
 * costlier than planning each call; with `limit $1` it guesses a tenth of the table for the limit, so the
 * generic plan never looked cheap, and every list request was planned again: ~0.4 ms of the database's CPU
 * for a 0.15 ms execution (pg_prepared_statements showed 0 generic plans in 12 runs). With `limit 20` the
 * generic plan is the custom one and is reused. The common sizes only: each is a prepared statement on every
 * connection. Other sizes and deeper pages (`offset $n`, guessed the same way) are planned per call.
 */
const LITERAL_LIMITS = new Set([10, 20, 50, 100, 200, 500]);
type PreparedPage = { execute(params: Record<string, unknown>): Promise<DeviceListRow[]> };

export function createDevicesRepository(db: Db) {
  /**
   * The two hottest reads (a device by id: every API read and send checks it), built once and run as
   * named prepared statements: drizzle builds no SQL per call and PostgreSQL plans once per connection,
   * and a prepared statement is one round trip where an unnamed one with parameters is two
   * (postgres.js describes it first). One statement per scope shape (project, or customer).
   */
  const prepared = (customer: boolean) => {
    const scope = placeholderScope(customer);
    const byId = and(eq(devices.id, sql.placeholder('id')), inScope(scope));
    const suffix = customer ? '_customer' : '';
    const afterId = and(inScope(scope), lt(devices.id, sql.placeholder('after')));
    /** Statements of one page size of LITERAL_LIMITS, the size written into their text, built on first use. */
    const bySize = (build: (limit: SQL, size: number) => PreparedPage) => {
      const made = new Map<number, PreparedPage>();
      return (limit: number) => {
        // Only the constants of LITERAL_LIMITS ever become SQL text.
        if (!LITERAL_LIMITS.has(limit)) throw new Error(`devices: page size ${limit} has no statement of its own`);
        let statement = made.get(limit);
        if (!statement) made.set(limit, (statement = build(sql.raw(String(limit)), limit)));
        return statement;
      };
    };
    // Rows mapped by a loop compiled once (src/db/row-mapper.ts), not field by field.
    return {
      /** A page of the unfiltered list (the console's and most clients' first call), as page() builds it. */
      page: withCompiledRows(
        pageQuery(inScope(scope), sql.placeholder('limit'), sql.placeholder('offset')).prepare(`devices_page${suffix}`),
      ),
      /** The first page at a common size: the size in the text, no offset (LITERAL_LIMITS). */
      firstPage: bySize((limit, size) =>
        withCompiledRows(pageQuery(inScope(scope), limit).prepare(`devices_first_${size}${suffix}`)),
      ),
      /** The same walked by key (`after`): a client paging through every device. */
      pageAfter: withCompiledRows(pageQuery(afterId, sql.placeholder('limit')).prepare(`devices_page_after${suffix}`)),
      pageAfterOf: bySize((limit, size) =>
        withCompiledRows(pageQuery(afterId, limit).prepare(`devices_after_${size}${suffix}`)),
      ),
      get: withCompiledRows(
        db
          .select({ ...devicesColumns(), ...typeInfo })
          .from(devices)
          .leftJoin(deviceTypes, eq(deviceTypes.id, devices.typeId))
          .where(byId)
          .limit(1)
          .prepare(`devices_get${suffix}`),
      ),
      getDetail: withCompiledRows(
        db
          .select({ ...devicesColumns(), ...typeInfo, groups: groupsOfDevice })
          .from(devices)
          .leftJoin(deviceTypes, eq(deviceTypes.id, devices.typeId))
          .where(byId)
          .limit(1)
          .prepare(`devices_get_detail${suffix}`),
      ),
    };
  };
  const statements = { project: prepared(false), customer: prepared(true) };
  const statementsOf = (scope: Scope) => (scope.customerId ? statements.customer : statements.project);

  /**
   * One page, newest first. The page's ids come from the index alone; only those rows are then read and
   * joined, so deep pages do not fetch and join every row they skip.
   */
  function pageQuery(condition: SQL | undefined, limit: number | Placeholder | SQL, offset?: number | Placeholder) {
    const base = db
      .select({ pageId: devices.id })
      .from(devices)
      .where(condition)
      .orderBy(desc(devices.id))
      // drizzle writes an SQL limit as it is (`limit 20`), a number or placeholder as a parameter.
      .limit(limit as number | Placeholder);
    const ids = (offset === undefined ? base : base.offset(offset)).as('page');
    return db
      .select({ ...listColumns, ...typeInfo })
      .from(ids)
      .innerJoin(devices, eq(devices.id, ids.pageId))
      .leftJoin(deviceTypes, eq(deviceTypes.id, devices.typeId))
      .orderBy(desc(devices.id));
  }

  function where(scope: Scope, f: DeviceFilter = {}): SQL {
    const parts: SQL[] = [inScope(scope)];
    if (f.typeId !== undefined) parts.push(eq(devices.typeId, f.typeId));
    if (f.groupIds?.length) parts.push(groupCondition(scope.projectId, f.groupIds));
    if (f.online !== undefined) parts.push(eq(devices.online, f.online));
    if (f.deviceKey !== undefined) parts.push(eq(devices.deviceKey, f.deviceKey));
    if (f.search !== undefined) parts.push(searchCondition(f.search));
    return and(...parts)!;
  }

  return {
    /** One page, newest first (pageQuery); the unfiltered list runs as a prepared statement. */
    async page(
      scope: Scope,
      filter: DeviceFilter,
      limit: number,
      offset: number,
      /** Keyset paging: only devices older than this id (the last one of the previous page). */
      after?: string,
    ): Promise<DeviceListRow[]> {
      if (Object.values(filter).every((v) => v === undefined)) {
        const statements = statementsOf(scope);
        const literal = offset === 0 && LITERAL_LIMITS.has(limit);
        if (after === undefined)
          return literal
            ? statements.firstPage(limit).execute(scopeParams(scope))
            : statements.page.execute({ limit, offset, ...scopeParams(scope) });
        if (offset === 0)
          return literal
            ? statements.pageAfterOf(limit).execute({ after, ...scopeParams(scope) })
            : statements.pageAfter.execute({ limit, after, ...scopeParams(scope) });
      }
      const condition = where(scope, filter);
      return pageQuery(after === undefined ? condition : and(condition, lt(devices.id, after)), limit, offset);
    },

    async total(scope: Scope, filter: DeviceFilter): Promise<number> {
      const [row] = await db
        .select({ total: sql<number>`count(*)::int` })
        .from(devices)
        .where(where(scope, filter));
      return row?.total ?? 0;
    },

    async get(scope: Scope, id: string, tx: Tx = db): Promise<DeviceWithType | undefined> {
      if (tx === db) {
        const [row] = await statementsOf(scope).get.execute({ id, ...scopeParams(scope) });
        return row;
      }
      const [row] = await tx
        .select({ ...devicesColumns(), ...typeInfo })
        .from(devices)
        .leftJoin(deviceTypes, eq(deviceTypes.id, devices.typeId))
        .where(and(eq(devices.id, id), inScope(scope)))
        .limit(1);
      return row;
    },

    /** The device with its group ids, in one statement (each statement costs ~0.4 ms on PGlite). */
    async getDetail(scope: Scope, id: string): Promise<(DeviceWithType & { groups: string[] }) | undefined> {
      const [row] = await statementsOf(scope).getDetail.execute({ id, ...scopeParams(scope) });
      return row;
    },

    /**
     * Inserts unless the project is at its quota. With a quota, the count and the insert run under
     * a lock on the project row, so concurrent creates (a fleet requesting certificates at power-up)
     * cannot overshoot it. Returns false when the quota is reached. A taken unique key raises
     * Duplicate (e.g. 'device_key').
     */
    async insertWithinQuota(quota: number | null, row: NewDevice): Promise<boolean> {
      if (quota === null) {
        await translating(deviceErrors, () => db.insert(devices).values(row));
        return true;
      }
      return translating(deviceErrors, () =>
        db.transaction(async (tx) => {
          await tx.select({ id: projects.id }).from(projects).where(eq(projects.id, row.projectId)).for('update');
          const [counted] = await tx
            .select({ n: sql<number>`count(*)::int` })
            .from(devices)
            .where(eq(devices.projectId, row.projectId));
          if ((counted?.n ?? 0) >= quota) return false;
          await tx.insert(devices).values(row);
          return true;
        }),
      );
    },

    /** A taken unique key raises Duplicate (e.g. 'device_key'). */
    async update(projectId: string, id: string, patch: Partial<NewDevice>): Promise<boolean> {
      const rows = await translating(deviceErrors, () =>
        db
          .update(devices)
          .set(patch)
          .where(and(eq(devices.id, id), eq(devices.projectId, projectId)))
          .returning({ id: devices.id }),
      );
      return rows.length > 0;
    },

    /**
     * Of the project's devices `ids`, those that are gone, disabled or changed (token reset, info) at or after
     * `since`: a node back from a NATS outage closes their sessions, since the kicks of that time missed it
     * (docs/cluster.md §5).
     */
    async changedSince(projectId: string, ids: string[], since: number): Promise<string[]> {
      if (!ids.length) return [];
      const kept = await db
        .select({ id: devices.id })
        .from(devices)
        .where(
          and(
            eq(devices.projectId, projectId),
            inArray(devices.id, ids),
            eq(devices.disabled, false),
            sql`${devices.updateTime} < ${since}`,
          ),
        );
      const unchanged = new Set(kept.map((r) => r.id));
      return ids.filter((id) => !unchanged.has(id));
    },

    /** Merges tags in one statement; refuses (returns false) when the result would exceed `maxTags`. */
    async mergeTags(
      projectId: string,
      id: string,
      tags: Record<string, string>,
      maxTags: number,
      now: number,
    ): Promise<'ok' | 'missing' | 'too-many'> {
      const merged = sql`${devices.tags} || ${JSON.stringify(tags)}::jsonb`;
      const rows = await db
        .update(devices)
        .set({ tags: sql`${merged}`, updateTime: now })
        .where(
          and(
            eq(devices.id, id),
            eq(devices.projectId, projectId),
            sql`(select count(*) from jsonb_object_keys(${merged})) <= ${maxTags}`,
          ),
        )
        .returning({ id: devices.id });
      if (rows.length) return 'ok';
      const exists = await db
        .select({ id: devices.id })
        .from(devices)
        .where(and(eq(devices.id, id), eq(devices.projectId, projectId)));
      return exists.length ? 'too-many' : 'missing';
    },

    async removeTags(projectId: string, id: string, keys: string[], now: number): Promise<boolean> {
      const rows = await db
        .update(devices)
        .set({
          tags: sql`${devices.tags} - ${sql`array[${sql.join(
            keys.map((k) => sql`${k}`),
            sql`, `,
          )}]::text[]`}`,
          updateTime: now,
        })
        .where(and(eq(devices.id, id), eq(devices.projectId, projectId)))
        .returning({ id: devices.id });
      return rows.length > 0;
    },

    async setGroups(projectId: string, id: string, groupIds: string[]): Promise<void> {
      await db.transaction(async (tx) => {
        await tx
          .delete(deviceGroupMembers)
          .where(and(eq(deviceGroupMembers.deviceId, id), eq(deviceGroupMembers.projectId, projectId)));
        if (groupIds.length) {
          await tx.insert(deviceGroupMembers).values(groupIds.map((groupId) => ({ groupId, deviceId: id, projectId })));
        }
      });
    },

    /**
     * The groups and all their descendants, resolved once so the device query filters by a plain
     * id list (a recursive CTE inside the per-device EXISTS made the planner walk every device).
     */
    async subtreeGroupIds(projectId: string, ids: string[]): Promise<string[]> {
      const list = sql.join(
        ids.map((g) => sql`${g}`),
        sql`, `,
      );
      const rows = await db.execute(sql`
        with recursive g(id, depth) as (
          select id, 0 from ${deviceGroups} where project_id = ${projectId} and id in (${list})
          union
          select c.id, g.depth + 1 from ${deviceGroups} c join g on c.parent_id = g.id
          where c.project_id = ${projectId} and g.depth < 64
        ) select distinct id from g`);
      return rowsOf<{ id: string }>(rows).map((r) => r.id);
    },

    async existingGroupIds(projectId: string, ids: string[]): Promise<string[]> {
      if (!ids.length) return [];
      const rows = await db
        .select({ id: deviceGroups.id })
        .from(deviceGroups)
        .where(and(eq(deviceGroups.projectId, projectId), inArray(deviceGroups.id, ids)));
      return rows.map((r) => r.id);
    },

    async typeInProject(projectId: string, typeId: string) {
      const [row] = await db
        .select({ id: deviceTypes.id })
        .from(deviceTypes)
        .where(and(eq(deviceTypes.id, typeId), eq(deviceTypes.projectId, projectId)))
        .limit(1);
      return row !== undefined;
    },

    async delete(projectId: string, id: string): Promise<boolean> {
      const rows = await db
        .delete(devices)
        .where(and(eq(devices.id, id), eq(devices.projectId, projectId)))
        .returning({ id: devices.id });
      return rows.length > 0;
    },

    /** Both stat calls from one pass over the project's rows (devices_project_id_idx; cached by the service). */
    async stats(scope: Scope) {
      const [row] = await db
        .select({
          total: sql<number>`count(*)::int`,
          online: sql<number>`count(*) filter (where ${devices.online})::int`,
          active: sql<number>`count(*) filter (where ${devices.active})::int`,
          alarm1: sql<number>`count(*) filter (where ${devices.alarmLevel} = 1)::int`,
          alarm2: sql<number>`count(*) filter (where ${devices.alarmLevel} = 2)::int`,
          alarm3: sql<number>`count(*) filter (where ${devices.alarmLevel} >= 3)::int`,
        })
        .from(devices)
        .where(inScope(scope));
      return row ?? { total: 0, online: 0, active: 0, alarm1: 0, alarm2: 0, alarm3: 0 };
    },
  };
}
export type DevicesRepository = ReturnType<typeof createDevicesRepository>;

const devicesColumns = () => getTableColumns(devices);
