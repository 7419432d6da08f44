/** Devices: server-side paged and filtered list (docs/http-api.md §3.4) with live online dots and activity. */
import { useEffect, useMemo, useState } from 'preact/hooks';
import type { Device, DeviceType, Group, Page } from '../api.ts';
import { useApp, useInterval, useLive, useThrottled } from '../ctx.ts';
import { formatAgo, formatTime, lastActive } from '../format.ts';
import { ColumnHeads, ErrorText, LevelText, LiveBadge, OnlineDot, Pager, useGet, useLivePatches } from './common.tsx';

const PAGE_RECORDS = 20;
/** Reads made because the live stream (re)opened: at most one this often (see `DevicesPage`). */
const OPEN_READ_MS = 5_000;

export function flattenGroups(groups: readonly Group[], depth = 0): { id: string; name: string; depth: number }[] {
  return groups.flatMap((g) => [{ id: g.id, name: g.name, depth }, ...flattenGroups(g.children ?? [], depth + 1)]);
}

/** A listed device with what live events told since the list was read (keys as in `DevicesPage`). */
function patched(d: Device, patch: Readonly<Record<string, boolean | number>>): Device {
  const online = patch[`${d.id} online`];
  const active = { ...d.active };
  for (const k of ['connect', 'disconnect', 'attributes'] as const) {
    const ts = patch[`${d.id} ${k}`];
    if (typeof ts === 'number') active[k] = ts;
  }
  return { ...d, online: typeof online === 'boolean' ? online : d.online, active };
}

export function DevicesPage() {
  const { t, lang } = useApp();
  // What is typed (kept in state, so that a live update re-rendering the form keeps it) and what is searched
  // for: the typed text once it is committed (Enter, or leaving the box).
  const [draft, setDraft] = useState('');
  const [search, setSearch] = useState('');
  const [type, setType] = useState('');
  // #/devices?group=<id> (the group tree links here) starts filtered by that group.
  const [group, setGroup] = useState(() => new URLSearchParams(location.hash.split('?')[1] ?? '').get('group') ?? '');
  const [online, setOnline] = useState('');
  const [page, setPage] = useState(1);
  const [now, setNow] = useState(Date.now());
  const query = useMemo(() => {
    const q = new URLSearchParams({ page: String(page), page_records: String(PAGE_RECORDS) });
    if (type) q.set('type', type);
    if (group) {
      q.set('group', group);
      q.set('include_sub_groups', '1');
    }
    if (online) q.set('online', online);
    // Name contains (any case) or device key starts with (docs/http-api.md §3.4); the input caps it at 64.
    if (search.trim()) q.set('search', search.trim());
    return `/api/v1/devices?${q.toString()}`;
  }, [page, type, group, online, search]);
  const list = useGet<Page<Device>>(query);
  const types = useGet<{ items: DeviceType[] }>('/api/v1/device_types');
  const groups = useGet<{ items: Group[] }>('/api/v1/device_groups_tree');
  // By `<device id> <field>`: `online`, or an `active` time (`connect`, `disconnect`, `attributes`).
  const [patch, setPatch] = useLivePatches<boolean | number>(list.sentAt);
  useEffect(() => setPage(1), [type, group, online, search]);
  const ids = useMemo(() => list.data?.items.map((d) => d.id) ?? [], [list.data]);
  // Read again when the stream opens: what changed between the list's read and then came as no event. A read can
  // change the page's devices, and so open a new stream, which reads again: while the list churns (devices being
  // created, the online filter during a storm) that would loop, so these reads come at most every OPEN_READ_MS.
  const readOnOpen = useThrottled(list.reload, OPEN_READ_MS);
  const live = useLive(
    ['online', 'attributes', 'alarm'],
    ids.length ? ids : [],
    (e) => {
      const id = e.payload.device?.id;
      if (!id) return;
      const ts = typeof e.payload.ts === 'number' ? e.payload.ts : Date.now();
      if (e.kind === 'online') {
        setPatch({
          [`${id} online`]: e.payload.online === true,
          [`${id} ${e.payload.online ? 'connect' : 'disconnect'}`]: ts,
        });
      } else if (e.kind === 'attributes') {
        setPatch({ [`${id} attributes`]: ts });
      } else if (e.kind === 'alarm') {
        list.reload();
      }
    },
    readOnOpen,
  );
  useInterval(
    () => {
      setNow(Date.now());
      if (!live) list.reload();
    },
    live ? 10_000 : 5_000,
  );
  const data = list.data;
  return (
    <section aria-labelledby="devices-h">
      <h1 id="devices-h">
        {t('devices')} <LiveBadge open={live} />
      </h1>
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <label>
          {t('search')}
          <input
            type="search"
            maxLength={64}
            placeholder={t('searchHint')}
            value={draft}
            onInput={(e) => setDraft(e.currentTarget.value)}
            onChange={(e) => setSearch(e.currentTarget.value)}
          />
        </label>
        <label>
          {t('type')}
          <select aria-label={t('type')} value={type} onChange={(e) => setType(e.currentTarget.value)}>
            <option value="">{t('any')}</option>
            {types.data?.items.map((ty) => (
              <option key={ty.id} value={ty.id}>
                {ty.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          {t('group')}
          <select aria-label={t('group')} value={group} onChange={(e) => setGroup(e.currentTarget.value)}>
            <option value="">{t('any')}</option>
            {flattenGroups(groups.data?.items ?? []).map((g) => (
              <option key={g.id} value={g.id}>
                {'\u00a0\u00a0'.repeat(g.depth) + g.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          {t('online')}
          <select aria-label={t('online')} value={online} onChange={(e) => setOnline(e.currentTarget.value)}>
            <option value="">{t('any')}</option>
            <option value="1">{t('onlineYes')}</option>
            <option value="0">{t('onlineNo')}</option>
          </select>
        </label>
      </form>
      <ErrorText error={list.error} />
      <table role="table" aria-labelledby="devices-h">
        <ColumnHeads keys={['status', 'name', 'deviceKey', 'type', 'lastActive', 'alarmLevel']} />
        <tbody>
          {data?.items.map((d0) => {
            const d = patched(d0, patch);
            const last = lastActive(d.active);
            return (
              <tr key={d.id}>
                <td>
                  <OnlineDot online={d.online} />
                </td>
                <td>
                  <a href={`#/device/${encodeURIComponent(d.id)}`}>{d.name}</a>
                </td>
                <td>{d.device_key}</td>
                <td>{d.type_info?.name ?? ''}</td>
                <td>
                  <time dateTime={last ? new Date(last).toISOString() : undefined} title={formatTime(last)}>
                    {formatAgo(last, now, lang)}
                  </time>
                </td>
                <td>
                  <LevelText level={d.alarm?.level} />
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <Pager page={page} pages={data?.page_total} setPage={setPage}>
        <span aria-live="polite">
          {data ? t('pageOf', { page, pages: Math.max(1, data.page_total), total: data.total }) : t('loading')}
        </span>
      </Pager>
    </section>
  );
}
