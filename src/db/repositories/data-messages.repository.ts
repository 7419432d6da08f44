import { and, asc, desc, eq, gte, lt, lte, sql, type SQL } from 'drizzle-orm';
import type { Db } from '../client.ts';
import { dataMessages, dataStreams, deviceTypes } from '../schema/index.ts';

export type DataMessageRow = typeof dataMessages.$inferSelect;
export type NewDataMessage = typeof dataMessages.$inferInsert;

/** A data stream as the device type defines it (device-protocol.md §7). */
export interface StreamDefinition {
  identifier: string;
  format: string;
  tcpBound: boolean;
  mapToAttributes: boolean;
}

/** What a device type says about custom data: its streams and its raw TCP settings (device-protocol.md §6–7). */
export interface TypeDataProfile {
  streams: StreamDefinition[];
  tcpHeartbeat: string | null;
  tcpFrameGapMs: number | null;
}

/** Inclusive bounds in ms; either may be absent. */
export interface TimeRange {
  start?: number;
  end?: number;
}

/** The smallest id of a millisecond (ids are 12 hex digits of ms, then 12 more: src/lib/ids.ts). */
const idFloor = (ms: number) =>
  `${Math.max(0, Math.min(ms, 0xffff_ffff_ffff)).toString(16).padStart(12, '0')}000000000000`;

/**
 * Messages of custom data streams (`data_messages`) and the stream definitions they are checked
 * against. Every read names the project and the device: another project's rows are never seen.
 */
export function createDataMessagesRepository(db: Db) {
  function where(projectId: string, deviceId: string, identifier: string, range: TimeRange): SQL {
    const parts: SQL[] = [
      eq(dataMessages.deviceId, deviceId),
      eq(dataMessages.identifier, identifier),
      eq(dataMessages.projectId, projectId),
    ];
    // Ids start with their time: id bounds keep the scan inside (device_id, identifier, id) of the index;
    // the ts conditions keep the answer exact.
    if (range.start !== undefined)
      parts.push(gte(dataMessages.id, idFloor(range.start)), gte(dataMessages.ts, range.start));
    if (range.end !== undefined)
      parts.push(lt(dataMessages.id, idFloor(range.end + 1)), lte(dataMessages.ts, range.end));
    return and(...parts)!;
  }

  return {
    /** The project's messages older than `before` (ms): its retention (README "Telemetry history"). */
    async deleteProjectBefore(projectId: string, before: number): Promise<void> {
      await db.execute(sql`delete from data_messages where project_id = ${projectId} and ts < ${before}`);
    },

    /** Messages older than `before` (ms) of the projects on the server's default retention (no project setting). */
    async deleteDefaultProjectsBefore(before: number): Promise<void> {
      await db.execute(sql`
        delete from data_messages m using projects p
        where p.id = m.project_id and p.history_retention_days is null and m.ts < ${before}`);
    },

    /** One multi-row INSERT. */
    async insertMany(rows: NewDataMessage[]): Promise<void> {
      // Ids are made by the server: a batch written again after a lost answer adds nothing.
      if (rows.length) await db.insert(dataMessages).values(rows).onConflictDoNothing({ target: dataMessages.id });
    },

    /** Newest first. */
    page(
      projectId: string,
      deviceId: string,
      identifier: string,
      range: TimeRange,
      limit: number,
      offset: number,
    ): Promise<DataMessageRow[]> {
      return db
        .select()
        .from(dataMessages)
        .where(where(projectId, deviceId, identifier, range))
        .orderBy(desc(dataMessages.id))
        .limit(limit)
        .offset(offset);
    },

    async count(projectId: string, deviceId: string, identifier: string, range: TimeRange): Promise<number> {
      const [row] = await db
        .select({ n: sql<number>`count(*)::int` })
        .from(dataMessages)
        .where(where(projectId, deviceId, identifier, range));
      return row?.n ?? 0;
    },

    /** The type's streams and TCP settings, or undefined when the type is not in the project. */
    async typeProfile(projectId: string, typeId: string): Promise<TypeDataProfile | undefined> {
      const [type] = await db
        .select({ tcpHeartbeat: deviceTypes.tcpHeartbeat, tcpFrameGapMs: deviceTypes.tcpFrameGapMs })
        .from(deviceTypes)
        .where(and(eq(deviceTypes.id, typeId), eq(deviceTypes.projectId, projectId)))
        .limit(1);
      if (!type) return undefined;
      const streams = await db
        .select({
          identifier: dataStreams.identifier,
          format: dataStreams.format,
          tcpBound: dataStreams.tcpBound,
          mapToAttributes: dataStreams.mapToAttributes,
        })
        .from(dataStreams)
        .where(and(eq(dataStreams.projectId, projectId), eq(dataStreams.deviceTypeId, typeId)))
        .orderBy(asc(dataStreams.identifier));
      return { streams, tcpHeartbeat: type.tcpHeartbeat, tcpFrameGapMs: type.tcpFrameGapMs };
    },
  };
}
export type DataMessagesRepository = ReturnType<typeof createDataMessagesRepository>;
