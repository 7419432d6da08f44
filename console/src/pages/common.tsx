/** Small shared pieces of the pages. */
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { api } from '../api.ts';
import { useApp } from '../ctx.ts';
import type { Key } from '../i18n.ts';

/** GET a path with the session's token; `reload` fetches again (keeping the old data meanwhile). */
export function useGet<T>(path: string | null): { data: T | undefined; error: string; reload: () => void } {
  const { session } = useApp();
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState('');
  const [n, setN] = useState(0);
  useEffect(() => {
    if (path === null) return undefined;
    let live = true;
    api<T>(session.token, 'GET', path).then(
      (d) => {
        if (live) {
          setData(d);
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
  return { data, error, reload };
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
