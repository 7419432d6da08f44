/** Small shared pieces of the pages. */
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useMemo, useState } from 'preact/hooks';
import { api } from '../api.ts';
import { useApp } from '../ctx.ts';
import type { Key } from '../i18n.ts';

/**
 * GET a path with the session's token; `reload` fetches again (keeping the old data meanwhile). `sentAt` is
 * when (`performance.now()`) the request whose answer `data` is was sent: what a live event told before then,
 * the answer already holds (see `useLivePatches`).
 */
export function useGet<T>(path: string | null): {
  data: T | undefined;
  error: string;
  reload: () => void;
  sentAt: number;
} {
  const { session } = useApp();
  const [got, setGot] = useState<{ data: T; sentAt: number } | undefined>(undefined);
  const [error, setError] = useState('');
  const [n, setN] = useState(0);
  useEffect(() => {
    if (path === null) return undefined;
    let live = true;
    const sentAt = performance.now();
    api<T>(session.token, 'GET', path).then(
      (data) => {
        if (live) {
          setGot({ data, sentAt });
          setError('');
        }
      },
      (e: Error) => live && setError(e.message),
    );
    return () => {
      live = false;
    };
  }, [path, session.token, n]);
  const reload = useCallback(() => setN((x) => x + 1), []);
  return { data: got?.data, error, reload, sentAt: got?.sentAt ?? -Infinity };
}

/**
 * What live events said since a read was sent, by key, laid over that read's answer. A read answered later
 * than an event may have been sent before it (a reload as the stream opens, say) and must not wipe it; an
 * event that came before the read was sent is in the answer, and is dropped once the answer is there.
 * Events come in order, so the last one under a key is never older than an answer sent before it came.
 */
export function useLivePatches<V>(
  sentAt: number,
): [Readonly<Record<string, V>>, (entries: Readonly<Record<string, V>>) => void] {
  const [map, setMap] = useState<Record<string, { value: V; at: number }>>({});
  useEffect(
    () =>
      setMap((m) => {
        const kept = Object.entries(m).filter(([, e]) => e.at >= sentAt);
        return kept.length === Object.keys(m).length ? m : Object.fromEntries(kept);
      }),
    [sentAt],
  );
  // What one event told, stamped when it came (not when the state update runs).
  const set = useCallback((entries: Readonly<Record<string, V>>) => {
    const at = performance.now();
    setMap((m) => {
      const next = { ...m };
      for (const [key, value] of Object.entries(entries)) next[key] = { value, at };
      return next;
    });
  }, []);
  const fresh = useMemo(() => {
    const out: Record<string, V> = {};
    for (const [k, e] of Object.entries(map)) if (e.at >= sentAt) out[k] = e.value;
    return out;
  }, [map, sentAt]);
  return [fresh, set];
}

/** A table's column headings, one `<th scope="col">` a key, in order. */
export function ColumnHeads({ keys }: { keys: readonly Key[] }) {
  const { t } = useApp();
  return (
    <thead>
      <tr>
        {keys.map((k) => (
          <th key={k} scope="col">
            {t(k)}
          </th>
        ))}
      </tr>
    </thead>
  );
}

/** Previous / next page buttons around `children` (what page this is); `pages` is unknown until the first page has come. */
export function Pager({
  page,
  pages,
  setPage,
  children,
}: {
  page: number;
  pages: number | undefined;
  setPage: (next: (p: number) => number) => void;
  children: ComponentChildren;
}) {
  const { t } = useApp();
  return (
    <div class="pager">
      <button type="button" disabled={page <= 1} onClick={() => setPage((p) => Math.max(1, p - 1))}>
        {t('previous')}
      </button>
      {children}
      <button type="button" disabled={pages === undefined || page >= pages} onClick={() => setPage((p) => p + 1)}>
        {t('next')}
      </button>
    </div>
  );
}

export function ErrorText({ error }: { error: string }) {
  return error ? (
    <p role="alert" class="error">
      {error}
    </p>
  ) : null;
}

export function Loading({ when, children }: { when: boolean; children: ComponentChildren }) {
  const { t } = useApp();
  return when ? <p aria-busy="true">{t('loading')}</p> : <>{children}</>;
}

export function LiveBadge({ open }: { open: boolean }) {
  const { t } = useApp();
  return (
    <span class={open ? 'badge live' : 'badge'} role="status" title={open ? t('live') : t('liveOff')}>
      {open ? `● ${t('live')}` : `○ ${t('liveOff')}`}
    </span>
  );
}

export function levelKey(level: number | undefined): Key | undefined {
  return level === 1 ? 'level1' : level === 2 ? 'level2' : level === 3 ? 'level3' : undefined;
}

export function LevelText({ level }: { level: number | undefined }) {
  const { t } = useApp();
  const k = levelKey(level);
  return k ? <span class={`level level-${level}`}>{t(k)}</span> : <span>{t('noAlarm')}</span>;
}

export function OnlineDot({ online }: { online: boolean }) {
  return (
    <span
      class={online ? 'dot on' : 'dot off'}
      role="img"
      aria-label={online ? 'online' : 'offline'}
      title={online ? 'online' : 'offline'}
    />
  );
}

export function KeyValues({ map }: { map: Record<string, unknown> }) {
  const { t } = useApp();
  const entries = Object.entries(map);
  if (!entries.length) return <p>{t('none')}</p>;
  return (
    <dl class="kv">
      {entries.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{typeof v === 'string' ? v : JSON.stringify(v)}</dd>
        </div>
      ))}
    </dl>
  );
}
