import type {
  ProjectSettingsRepository,
  ProjectSettingsRow,
} from '../../db/repositories/project-settings.repository.ts';
import { BadRequest, NotFound } from '../../errors.ts';
import { DAY_MS } from '../../lib/time.ts';
import { TtlCache } from '../../lib/ttl-cache.ts';
import type { Scope } from '../auth/principal.ts';
import type { EventBus } from '../events/event-bus.ts';

/** Server-wide values a project's settings fall back to (config: MQTT_RATE_LIMIT, HISTORY_RETENTION_DAYS). */
export interface SettingsDefaults {
  deviceRateLimit: number;
  /** The operator's ceiling on a project's device rate (DEVICE_RATE_LIMIT_MAX); a stored higher value is capped. */
  deviceRateLimitMax?: number;
  historyRetentionDays: number;
}

/** Shortest customer password by default (NIST SP 800-63B's floor for user-chosen secrets). */
export const DEFAULT_CUSTOMER_PASSWORD_MIN = 8;
/** The lowest a project may set it: fleets migrated from the vendor's cloud carry 6-character passwords. */
export const CUSTOMER_PASSWORD_MIN_FLOOR = 6;

export interface ProjectSettings {
  /** Messages per second one device may send; null = the server default. */
  device_rate_limit: number | null;
  /** Days of history kept; 0 = forever; null = the server default. */
  history_retention_days: number | null;
  /** Shortest customer password accepted on create and password change (6–128); null = 8. */
  customer_password_min_length: number | null;
  /** What applies now, defaults filled in. */
  effective: { device_rate_limit: number; history_retention_days: number; customer_password_min_length: number };
}

export interface ProjectSettingsDeps {
  repo: ProjectSettingsRepository;
  defaults: SettingsDefaults;
  clock?: () => number;
  /** How long a node may use a project's settings before reading them again. */
  cacheMs?: number;
  /**
   * `project.settings_changed` is emitted on a change and heard back from every node (docs/cluster.md §4):
   * every node's cache reads the project's settings again.
   */
  bus?: Pick<EventBus, 'emit' | 'on'>;
}

/**
 * Per-project operating limits (device-protocol.md §3 "rate limits are configurable per project",
 * history retention per project, README "Telemetry history"). Read on hot paths (every connection, every back-dated report),
 * so cached per node for a few seconds; a change on this node applies at once.
 */
export function createProjectSettingsService({
  repo,
  defaults,
  clock = Date.now,
  cacheMs = 10_000,
  bus,
}: ProjectSettingsDeps) {
  const cache = new TtlCache<ProjectSettings>(cacheMs, clock);
  bus?.on('project.settings_changed', ({ projectId }) => cache.invalidate(projectId));

  const view = (row: ProjectSettingsRow): ProjectSettings => ({
    device_rate_limit: row.deviceRateLimit,
    history_retention_days: row.historyRetentionDays,
    customer_password_min_length: row.customerPasswordMinLength,
    effective: {
      device_rate_limit: Math.min(
        row.deviceRateLimit ?? defaults.deviceRateLimit,
        defaults.deviceRateLimitMax ?? Infinity,
      ),
      history_retention_days: row.historyRetentionDays ?? defaults.historyRetentionDays,
      customer_password_min_length: row.customerPasswordMinLength ?? DEFAULT_CUSTOMER_PASSWORD_MIN,
    },
  });
  async function load(projectId: string): Promise<ProjectSettings> {
    const row = await repo.get(projectId);
    if (!row) throw new NotFound('Project');
    return view(row);
  }

  const get = (projectId: string) => cache.get(projectId, '', () => load(projectId));

  return {
    get: (scope: Scope) => get(scope.projectId),

    async update(
      scope: Scope,
      patch: {
        device_rate_limit?: number | null;
        history_retention_days?: number | null;
        customer_password_min_length?: number | null;
      },
    ): Promise<ProjectSettings> {
      const max = defaults.deviceRateLimitMax;
      if (max !== undefined && patch.device_rate_limit != null && patch.device_rate_limit > max) {
        throw new BadRequest(`device_rate_limit is at most ${max} messages per second on this server`, [
          { path: 'device_rate_limit', message: `at most ${max}` },
        ]);
      }
      const set = {
        ...(patch.device_rate_limit !== undefined ? { deviceRateLimit: patch.device_rate_limit } : {}),
        ...(patch.history_retention_days !== undefined ? { historyRetentionDays: patch.history_retention_days } : {}),
        ...(patch.customer_password_min_length !== undefined
          ? { customerPasswordMinLength: patch.customer_password_min_length }
          : {}),
        updateTime: clock(),
      };
      const row = await repo.update(scope.projectId, set);
      if (!row) throw new NotFound('Project');
      cache.invalidate(scope.projectId);
      bus?.emit('project.settings_changed', { projectId: scope.projectId });
      return view(row);
    },

    /**
     * Shortest customer password the project accepts. Read uncached: password calls are rare, and a
     * change on another node must apply at once.
     */
    async customerPasswordMin(projectId: string): Promise<number> {
      return (await load(projectId)).effective.customer_password_min_length;
    },

    /** Messages per second a device of the project may send. */
    async deviceRateLimit(projectId: string): Promise<number> {
      return (await get(projectId)).effective.device_rate_limit;
    },

    /** The oldest report time the project keeps (ms); 0 when it keeps history forever. */
    async oldestKept(projectId: string): Promise<number> {
      const days = (await get(projectId)).effective.history_retention_days;
      return days > 0 ? clock() - days * DAY_MS : 0;
    },

    /** Projects whose retention differs from the server's (the retention job handles them one by one). */
    retentionOverrides: (): Promise<Array<{ projectId: string; days: number }>> => repo.retentionOverrides(),
  };
}
export type ProjectSettingsService = ReturnType<typeof createProjectSettingsService>;
