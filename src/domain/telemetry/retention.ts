import type { DataMessagesRepository } from '../../db/repositories/data-messages.repository.ts';
import type { HistoryRepository } from '../../db/repositories/history.repository.ts';
import { DAY_MS } from '../../lib/time.ts';
import type { ProjectSettingsService } from '../projects/project-settings.service.ts';
import { RECEIPT_WINDOW_MS } from './ingest.ts';

const HOUR_MS = 3_600_000;
const PRUNE_EVERY_MS = 5 * 60_000;

export interface RetentionDeps {
  history: HistoryRepository;
  messages: Pick<DataMessagesRepository, 'deleteProjectBefore' | 'deleteDefaultProjectsBefore'>;
  settings: Pick<ProjectSettingsService, 'retentionOverrides'>;
  /** The server's HISTORY_RETENTION_DAYS (0 = forever). */
  defaultDays: number;
  clock?: () => number;
  logger?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
  /** Cluster mode: whether this node runs the passes now (it holds the lease; docs/cluster.md §4). Default: always. */
  runs?: () => boolean;
}

/**
 * Keeps the history within its retention (README "Telemetry history"): day partitions are created ahead (plain
 * PostgreSQL and PGlite); whole days older than the longest retention any project asks for are
 * dropped (partitions, or TimescaleDB chunks); projects keeping less lose their older rows by
 * DELETE. Custom data-stream messages follow the same per-project retention.
 */
export function createRetention({
  history,
  messages,
  settings,
  defaultDays,
  clock = Date.now,
  logger,
  runs = () => true,
}: RetentionDeps) {
  let first: NodeJS.Timeout | undefined;
  let timer: NodeJS.Timeout | undefined;
  let prune: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  async function runOnce(): Promise<{ dropped: number; projects: number }> {
    const now = clock();
    const today = history.dayOf(now);
    await history.ensurePartitions([today - 1, today, today + 1, today + 2]);
    const overrides = await settings.retentionOverrides();
    const all = [defaultDays, ...overrides.map((o) => o.days)];
    // Whole days go only when nobody keeps them: forever (0) anywhere keeps every day.
    const longest = all.includes(0) ? 0 : Math.max(...all);
    const dropped = longest > 0 ? await history.dropBefore(now - longest * DAY_MS) : 0;
    let trimmed = 0;
    const shorter = overrides.filter((o) => o.days > 0 && (longest === 0 || o.days < longest));
    const defaultShorter = defaultDays > 0 && (longest === 0 || defaultDays < longest);
    for (const o of shorter) {
      await history.deleteProjectBefore(o.projectId, now - o.days * DAY_MS);
      trimmed += 1;
    }
    // Projects on the server default, when some other project keeps longer.
    if (defaultShorter) {
      await history.deleteDefaultProjectsBefore(now - defaultDays * DAY_MS);
    }
    // Data-stream messages: the project's retention, or the default.
    for (const o of overrides.filter((x) => x.days > 0)) {
      await messages.deleteProjectBefore(o.projectId, now - o.days * DAY_MS);
    }
    if (defaultDays > 0) {
      await messages.deleteDefaultProjectsBefore(now - defaultDays * DAY_MS);
    }
    return { dropped, projects: trimmed };
  }

  const tick = () => {
    if (!runs()) return running;
    running ??= runOnce()
      .then((r) => {
        if (r.dropped || r.projects) logger?.info(r, 'history retention applied');
      })
      .catch((err: unknown) => logger?.warn({ err }, 'history retention failed; retrying later'))
      .finally(() => {
        running = undefined;
      });
    return running;
  };

  return {
    runOnce,
    /**
     * First pass a little after the start (it may DELETE a lot: it must not delay accepting devices; the
     * ingest creates the partitions it writes to by itself), then hourly.
     */
    start(firstAfterMs = 30_000): void {
      // The ingest's commit records are needed only while a lost answer is retried (until the database
      // answers again): an hour's worth is kept, pruned every few minutes on their own timer, so a failing
      // retention pass cannot let them pile up.
      prune = setInterval(() => {
        if (!runs()) return;
        history
          .pruneCommits(clock() - HOUR_MS)
          .catch((err: unknown) => logger?.warn({ err }, 'ingest commit records not pruned'));
        // Receipts past their look-up window are never matched again (device-protocol.md §3.3).
        history
          .pruneReceipts(clock() - RECEIPT_WINDOW_MS)
          .catch((err: unknown) => logger?.warn({ err }, 'report receipts not pruned'));
      }, PRUNE_EVERY_MS);
      prune.unref();
      first = setTimeout(() => {
        void tick();
        timer = setInterval(tick, HOUR_MS);
        timer.unref();
      }, firstAfterMs);
      first.unref();
    },
    async stop(): Promise<void> {
      if (first) clearTimeout(first);
      if (timer) clearInterval(timer);
      if (prune) clearInterval(prune);
      first = timer = prune = undefined;
      await running;
    },
  };
}
export type Retention = ReturnType<typeof createRetention>;
