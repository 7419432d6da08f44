import { randomInt } from 'node:crypto';
import type {
  DataMessagesRepository,
  NewDataMessage,
  TimeRange,
  TypeDataProfile,
} from '../../db/repositories/data-messages.repository.ts';
import type { DevicesRepository } from '../../db/repositories/devices.repository.ts';
import { AppError, BadRequest, NotFound, StateConflict } from '../../errors.ts';
import type { Scope } from '../auth/principal.ts';
import { sendOrFail, type SessionRegistry, type Transport } from '../delivery/sessions.ts';
import type { StreamFormat } from '../device-types/stream-definitions.ts';
import { deviceInScope } from '../devices/device-in-scope.ts';
import type { DeviceIdentity } from '../devices/device-identity.ts';
import type { PresenceService } from '../devices/presence.service.ts';
import type { EventBus } from '../events/event-bus.ts';
import type { CurrentValuesService } from './current-values.service.ts';
import { resolveRange } from './history.service.ts';
import { createIngest } from './ingest.ts';
import { STREAM_IDENTIFIER } from '../../../mqtt-broker/protocol/data-streams.ts';
import { encodeMessage, MAX_DATA_BYTES, type MessageType } from './data-push.service.ts';

/** The stream a TCP link carries when its type binds none (device-protocol.md §6). */
export const DEFAULT_TCP_STREAM = 'stream';

/** How a stream's bytes are checked, shown and framed: the type's definition, or the defaults. */
export interface ResolvedStream {
  identifier: string;
  format: StreamFormat;
  mapToAttributes: boolean;
  /** Whether the device type defines it (false: an undeclared stream of a type without definitions). */
  defined: boolean;
}

/** What a raw TCP link of a device needs at login (device-protocol.md §6). */
export interface TcpProfile {
  stream: ResolvedStream;
  /** The type's heartbeat string (dropped, never recorded), or null. */
  heartbeat: string | null;
  /** The type's frame gap; null = the server's default. */
  frameGapMs: number | null;
}

export type DropReason = 'unknown_stream' | 'empty' | 'too_large' | 'not_json';

export type UpstreamResult = { recorded: true; id: string; ts: number } | { recorded: false; reason: DropReason };

export interface DataStreamsDeps {
  repo: DataMessagesRepository;
  devices: Pick<DevicesRepository, 'get'>;
  sessions: Pick<SessionRegistry, 'locate'>;
  presence: Pick<PresenceService, 'touch'>;
  currentValues: Pick<CurrentValuesService, 'report'>;
  bus: Pick<EventBus, 'emit'>;
  clock?: () => number;
  /** How long a type's stream definitions are reused; changes made through the API invalidate at once. */
  profileTtlMs?: number;
  /** Messages are written in multi-row INSERTs of at most this many rows… */
  batchMaxRows?: number;
  /** …gathered for at most this long (a write in progress gathers the next batch meanwhile). */
  batchDelayMs?: number;
}

const FORMATS: readonly string[] = ['hex', 'text', 'json'];
const formatOf = (f: string): StreamFormat => (FORMATS.includes(f) ? (f as StreamFormat) : 'hex');
const EMPTY_PROFILE: TypeDataProfile = { streams: [], tcpHeartbeat: null, tcpFrameGapMs: null };
const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** The stream a raw TCP link carries: the TCP-bound one, else a defined `stream`, else `stream` as hex. */
export function tcpStreamOf(profile: TypeDataProfile): ResolvedStream {
  const def =
    profile.streams.find((s) => s.tcpBound) ?? profile.streams.find((s) => s.identifier === DEFAULT_TCP_STREAM);
  if (def)
    return {
      identifier: def.identifier,
      format: formatOf(def.format),
      mapToAttributes: def.mapToAttributes && def.format === 'json',
      defined: true,
    };
  return { identifier: DEFAULT_TCP_STREAM, format: 'hex', mapToAttributes: false, defined: false };
}

/**
 * The stream an identifier names for a device of this type: a type that defines streams accepts
 * only those (over TCP also the implicit `stream` when none is bound); a type without definitions
 * (or no type) accepts any identifier, as a hex stream. Undefined = refused.
 */
export function resolveStream(
  profile: TypeDataProfile,
  identifier: string,
  transport: Transport,
): ResolvedStream | undefined {
  const def = profile.streams.find((s) => s.identifier === identifier);
  if (def)
    return {
      identifier,
      format: formatOf(def.format),
      mapToAttributes: def.mapToAttributes && def.format === 'json',
      defined: true,
    };
  if (transport === 'tcp' && identifier === DEFAULT_TCP_STREAM && tcpStreamOf(profile).identifier === identifier)
    return tcpStreamOf(profile);
  if (profile.streams.length) return undefined;
  return { identifier, format: 'hex', mapToAttributes: false, defined: false };
}

/**
 * Ids of recorded messages: time-ordered like src/lib/ids.ts (12 hex digits of the message's ms,
 * then 12 more), and increasing within each millisecond in this process, so messages of one device
 * with the same time keep their order when read newest first. The millisecond part is the message's
 * own time, so a time range is also an id range.
 */
export function monotonicIds(horizon = 4096) {
  const seqs = new Map<number, number>();
  return (ms: number): string => {
    const last = seqs.get(ms);
    const seq = last === undefined ? randomInt(0, 2 ** 40) : last + 1;
    seqs.set(ms, seq);
    if (seqs.size > horizon) seqs.delete(seqs.keys().next().value!);
    return `${ms.toString(16).padStart(12, '0')}${seq.toString(16).padStart(12, '0')}`;
  };
}

/** The paging and time window of a message-log read. */
export interface MessagesQuery {
  page: number;
  page_records: number;
  start_time?: number;
  end_time?: number;
}

/**
 * Custom data streams (device-protocol.md §7): upstream messages from MQTT `data/<identifier>` and
 * raw TCP links, downstream pushes (`data/<identifier>/set`, TCP bytes), each recorded with its
 * direction, transport, bytes and time, announced as `device.data`, and read back newest first.
 * JSON streams may map their objects into attributes through the telemetry ingest entry.
 */
export function createDataStreamsService({
  repo,
  devices,
  sessions,
  presence,
  currentValues,
  bus,
  clock = Date.now,
  profileTtlMs = 5_000,
  batchMaxRows = 500,
  batchDelayMs = 10,
}: DataStreamsDeps) {
  const nextId = monotonicIds();
  // The same pipeline as attribute values: batches, back-pressure, retries while the database is away.
  const writer = createIngest<NewDataMessage>({
    write: (rows) => repo.insertMany(rows),
    batchSize: batchMaxRows,
    batchDelayMs,
    maxPending: 20_000,
  });
  const profiles = new Map<string, { profile: Promise<TypeDataProfile>; until: number }>();
  const MAX_PROFILES = 10_000;
  const inFlight = new Set<Promise<unknown>>();
  const counters = {
    up: 0,
    down: 0,
    dropped: { unknown_stream: 0, empty: 0, too_large: 0, not_json: 0 } as Record<DropReason, number>,
    mappingFailed: 0,
  };

  const profileKey = (projectId: string, typeId: string) => `${projectId}\u0001${typeId}`;

  /** The data settings of a device type, cached for `profileTtlMs`; a device without a type has none. */
  function profileOf(projectId: string, typeId: string | null): Promise<TypeDataProfile> {
    if (!typeId) return Promise.resolve(EMPTY_PROFILE);
    const key = profileKey(projectId, typeId);
    const now = clock();
    const hit = profiles.get(key);
    if (hit && hit.until > now) return hit.profile;
    if (profiles.size >= MAX_PROFILES) profiles.clear();
    const profile = repo.typeProfile(projectId, typeId).then((p) => p ?? EMPTY_PROFILE);
    const entry = { profile, until: now + profileTtlMs };
    profiles.set(key, entry);
    profile.catch(() => profiles.get(key) === entry && profiles.delete(key));
    return profile;
  }

  function track<T>(p: Promise<T>): Promise<T> {
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p)).catch(() => {});
    return p;
  }

  function drop(reason: DropReason): UpstreamResult {
    counters.dropped[reason] += 1;
    return { recorded: false, reason };
  }

  async function record(
    projectId: string,
    deviceId: string,
    identifier: string,
    direction: 'up' | 'down',
    transport: Transport,
    payload: Buffer,
    ts: number,
  ) {
    const id = nextId(ts);
    // A downlink comes from an HTTP caller who waits: not held for a batch to fill.
    await writer.submit([{ id, projectId, deviceId, identifier, direction, transport, payload, ts }], {
      now: direction === 'down',
    });
    counters[direction] += 1;
    bus.emit('device.data', { projectId, deviceId, identifier, direction, transport, payload, ts });
    return id;
  }

  /** A JSON object of a mapped stream becomes an attribute report; a refused report leaves the message recorded. */
  async function mapToAttributes(identity: DeviceIdentity, value: unknown, ts: number) {
    if (!isPlainObject(value)) return;
    try {
      await currentValues.report(identity, value, ts);
    } catch (err) {
      counters.mappingFailed += 1;
      if (!(err instanceof AppError)) throw err;
    }
  }

  async function upstream(
    identity: DeviceIdentity,
    transport: Transport,
    identifier: string | undefined,
    payload: Buffer,
    ts = clock(),
  ): Promise<UpstreamResult> {
    const profile = await profileOf(identity.projectId, identity.typeId);
    const stream = identifier === undefined ? tcpStreamOf(profile) : resolveStream(profile, identifier, transport);
    if (!stream) return drop('unknown_stream');
    if (!payload.length) return drop('empty');
    if (payload.length > MAX_DATA_BYTES) return drop('too_large');
    let value: unknown;
    if (stream.format === 'json') {
      try {
        value = JSON.parse(payload.toString('utf8'));
      } catch {
        return drop('not_json');
      }
    }
    const id = await record(identity.projectId, identity.deviceId, stream.identifier, 'up', transport, payload, ts);
    presence.touch(identity.deviceId, 'data', ts);
    if (stream.mapToAttributes) await mapToAttributes(identity, value, ts);
    return { recorded: true, id, ts };
  }

  return {
    /**
     * A message from the device: MQTT `data/<identifier>`, or (identifier undefined) the stream of a
     * raw TCP link. Resolves once it is stored (and mapped); a refused message is dropped and counted.
     */
    upstream: (
      identity: DeviceIdentity,
      transport: Transport,
      identifier: string | undefined,
      payload: Buffer,
      ts?: number,
    ) => track(upstream(identity, transport, identifier, payload, ts)),

    /** What a raw TCP link of this device carries and how it is framed (read at login). */
    async tcpProfile(identity: Pick<DeviceIdentity, 'projectId' | 'typeId'>): Promise<TcpProfile> {
      const profile = await profileOf(identity.projectId, identity.typeId);
      return { stream: tcpStreamOf(profile), heartbeat: profile.tcpHeartbeat, frameGapMs: profile.tcpFrameGapMs };
    },

    /** The type's streams or TCP settings changed: the next message reads them again. */
    forgetType(projectId: string, typeId: string) {
      profiles.delete(profileKey(projectId, typeId));
    },

    /**
     * Downstream bytes (http-api.md §3 `data/:identifier/set`): to `data/<identifier>/set` over MQTT,
     * or written to the raw TCP link, which carries only the type's TCP stream. Recorded once sent.
     */
    push: (
      scope: Scope,
      deviceId: string,
      identifier: string,
      message: { type: MessageType; msg: unknown },
      pushMode: Transport = 'mqtt',
    ) =>
      track(
        (async () => {
          if (!STREAM_IDENTIFIER.test(identifier)) {
            throw new BadRequest('The stream identifier must match ^[A-Za-z0-9_-]{1,64}$', [
              { path: 'identifier', message: 'invalid identifier' },
            ]);
          }
          const bytes = encodeMessage(message.type, message.msg);
          const device = await deviceInScope(devices, scope, deviceId);
          const profile = await profileOf(scope.projectId, device.typeId);
          if (!resolveStream(profile, identifier, pushMode)) throw new NotFound('Data stream');
          if (pushMode === 'tcp') {
            const tcp = tcpStreamOf(profile).identifier;
            if (identifier !== tcp) {
              throw new BadRequest(`A raw TCP link carries only the stream "${tcp}" (push_mode=tcp)`, [
                { path: 'identifier', message: `must be ${tcp} with push_mode=tcp` },
              ]);
            }
          }
          const session = await sessions.locate(deviceId);
          if (!session || session.projectId !== scope.projectId) throw new StateConflict('Device is offline');
          if (session.transport !== pushMode) throw new StateConflict(`Device is not connected over ${pushMode}`);
          await sendOrFail(session, pushMode === 'mqtt' ? `data/${identifier}/set` : '', bytes);
          await record(scope.projectId, deviceId, identifier, 'down', pushMode, bytes, clock());
        })(),
      ),

    /** The message log of one stream of a device, newest first (`GET /api/v1/device/:id/data/:identifier/messages`). */
    async messages(scope: Scope, deviceId: string, identifier: string, query: MessagesQuery) {
      const device = await deviceInScope(devices, scope, deviceId);
      // The same window rules as the attribute series.
      const { from, to } = resolveRange(query, clock());
      const range: TimeRange = { start: from, end: to };
      // Messages of a stream since removed from the type stay readable, shown as hex.
      const format = resolveStream(await profileOf(scope.projectId, device.typeId), identifier, 'tcp')?.format ?? 'hex';
      const offset = (query.page - 1) * query.page_records;
      const [rows, total] = await Promise.all([
        repo.page(scope.projectId, deviceId, identifier, range, query.page_records, offset),
        repo.count(scope.projectId, deviceId, identifier, range),
      ]);
      const items = rows.map((r) => {
        const hex = r.payload.toString('hex');
        return {
          id: r.id,
          direction: r.direction,
          transport: r.transport,
          ts: r.ts,
          size: r.payload.length,
          format,
          data: format === 'hex' ? hex : r.payload.toString('utf8'),
          hex,
        };
      });
      return { items, total, page_total: Math.ceil(total / query.page_records) };
    },

    /** Counts since start: recorded messages by direction, dropped ones by reason, refused mappings. */
    stats() {
      return {
        up: counters.up,
        down: counters.down,
        dropped: { ...counters.dropped },
        mappingFailed: counters.mappingFailed,
        queued: writer.stats().pendingValues,
      };
    },

    /** Writes what is queued (tests, and before a graceful stop). */
    flush: () => writer.flush(),

    /** Graceful stop: waits for messages being handled, then writes what is queued. */
    async stop() {
      await Promise.allSettled([...inFlight]);
      await writer.flush();
    },
  };
}
export type DataStreamsService = ReturnType<typeof createDataStreamsService>;
