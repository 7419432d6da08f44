/**
 * One device: information, current values (live), history chart, commands, pushes, data messages, tags,
 * groups, extended infos and certificate. Customers get the reading parts only (docs/http-api.md §2).
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import {
  api,
  type AlarmLog,
  type Attribute,
  type AttributeModel,
  type Command,
  type DataMessage,
  type DataStream,
  type Device,
  type Group,
  type Page,
} from '../api.ts';
import { Chart } from '../chart.tsx';
import { useApp, useInterval, useLive } from '../ctx.ts';
import { formatAgo, formatHex, formatTime, formatValue, lastActive, parseJsonObject } from '../format.ts';
import type { Key } from '../i18n.ts';
import {
  bucketInterval,
  planFor,
  planQuery,
  rangeError,
  rangeOf,
  toChartData,
  tooDense,
  MAX_POINTS,
  SERIES_PAGE,
  type Plan,
  type RangeChoice,
  type TimeRange,
} from '../range.ts';
import type { LiveEvent } from '../sse.ts';
import { flattenGroups } from './devices.tsx';
import {
  ColumnHeads,
  ErrorText,
  KeyValues,
  LevelText,
  LiveBadge,
  OnlineDot,
  useGet,
  useLivePatches,
} from './common.tsx';

const FINAL_STATES = new Set(['replied', 'timeout', 'expired', 'failed']);
const SOURCE_KEY: Record<string, Key> = { report: 'reported', push: 'pushed', cloud: 'cloud' };

export function DevicePage({ id }: { id: string }) {
  const { t, session, lang } = useApp();
  const admin = session.role === 'admin';
  const enc = encodeURIComponent(id);
  const device = useGet<Device>(`/api/v1/device/${enc}`);
  const attrs = useGet<Attribute[]>(`/api/v1/device/${enc}/attributes`);
  const typeId = device.data?.type || null;
  const models = useGet<{ items: (AttributeModel & { identifier: string })[] }>(
    typeId ? `/api/v1/device_type/${encodeURIComponent(typeId)}/attributes` : null,
  );
  const [liveValues, setLiveValue] = useLivePatches<{ value: unknown; attr_type: string; ts: number }>(attrs.sentAt);
  const [livePresence, setLivePresence] = useLivePatches<boolean>(device.sentAt);
  const [lastTs, setLastTs] = useState<number | undefined>(undefined);
  const [now, setNow] = useState(Date.now());
  const [commandsTick, setCommandsTick] = useState(0);
  const [dataTick, setDataTick] = useState(0);
  const [livePoint, setLivePoint] = useState<{ identifier: string; ts: number; value: unknown } | undefined>(undefined);

  const onEvent = (e: LiveEvent) => {
    const ts = typeof e.payload.ts === 'number' ? e.payload.ts : Date.now();
    if (e.kind === 'attributes') {
      const map = (e.payload.attributes ?? {}) as Record<string, unknown>;
      const attrType = typeof e.payload.attr_type === 'string' ? e.payload.attr_type : 'report';
      const values: Record<string, { value: unknown; attr_type: string; ts: number }> = {};
      for (const [k, value] of Object.entries(map)) values[k] = { value, attr_type: attrType, ts };
      setLiveValue(values);
      if (attrType === 'report')
        for (const [k, value] of Object.entries(map)) setLivePoint({ identifier: k, ts, value });
      setLastTs(ts);
    } else if (e.kind === 'online') {
      setLivePresence({ online: e.payload.online === true });
      setLastTs(ts);
    } else if (e.kind === 'command_reply') {
      setCommandsTick((n) => n + 1);
    } else if (e.kind === 'data') {
      setDataTick((n) => n + 1);
    } else if (e.kind === 'alarm') {
      device.reload();
    }
  };
  // Read again whenever the stream opens: what changed between the page's first reads and the stream's opening
  // came as no event (a value reported right after the page loaded would otherwise wait for the next one).
  const live = useLive(['attributes', 'online', 'command_reply', 'data', 'alarm'], [id], onEvent, () => {
    attrs.reload();
    device.reload();
  });
  useInterval(
    () => {
      setNow(Date.now());
      if (!live) {
        attrs.reload();
        device.reload();
      }
    },
    live ? 10_000 : 5_000,
  );

  const modelOf = useMemo(() => {
    const m: Record<string, AttributeModel> = {};
    for (const a of models.data?.items ?? []) m[a.identifier] = a;
    for (const a of attrs.data ?? []) if (!m[a.identifier]) m[a.identifier] = a.model;
    return m;
  }, [models.data, attrs.data]);

  const rows = useMemo(() => {
    const byId = new Map<string, { identifier: string; value: unknown; attr_type: string; ts: number }>();
    for (const a of attrs.data ?? []) byId.set(a.identifier, a);
    // A live value told after the read was sent, unless the read holds a newer one (a report may be back-dated).
    for (const [k, v] of Object.entries(liveValues))
      if (v.ts >= (byId.get(k)?.ts ?? -Infinity)) byId.set(k, { identifier: k, ...v });
    return [...byId.values()].sort((a, b) => a.identifier.localeCompare(b.identifier));
  }, [attrs.data, liveValues]);

  if (device.error && !device.data) {
    return (
      <section>
        <h1>{t('notFound')}</h1>
        <ErrorText error={device.error} />
        <a href="#/devices">{t('back')}</a>
      </section>
    );
  }
  const d = device.data;
  if (!d) return <p aria-busy="true">{t('loading')}</p>;
  const isOnline = livePresence.online ?? d.online;
  const last = Math.max(lastActive(d.active) ?? 0, lastTs ?? 0) || undefined;
  const nameOf = (identifier: string) => modelOf[identifier]?.name || identifier;
  return (
    <article aria-labelledby="device-h">
      <p>
        <a href="#/devices">{t('back')}</a>
      </p>
      <h1 id="device-h">{d.name}</h1>
      <p class="device-status">
        <OnlineDot online={isOnline} /> {isOnline ? t('onlineYes') : t('onlineNo')} · {t('lastActive')}:{' '}
        <span title={formatTime(last)}>{formatAgo(last, now, lang)}</span> · {t('alarmLevel')}:{' '}
        <LevelText level={d.alarm?.level} /> <LiveBadge open={live} />
      </p>

      <section aria-labelledby="info-h">
        <h2 id="info-h">{t('info')}</h2>
        <dl class="kv">
          <div>
            <dt>ID</dt>
            <dd>{d.id}</dd>
          </div>
          <div>
            <dt>{t('type')}</dt>
            <dd>{d.type_info?.name || '—'}</dd>
          </div>
          <div>
            <dt>{t('deviceKey')}</dt>
            <dd>{d.device_key || '—'}</dd>
          </div>
          <div>
            <dt>{t('description')}</dt>
            <dd>{d.descr || '—'}</dd>
          </div>
          <div>
            <dt>{t('created')}</dt>
            <dd>{formatTime(d.create_time)}</dd>
          </div>
          {d.gateway && (
            <div>
              <dt>{t('gateway')}</dt>
              <dd>
                <a href={`#/device/${encodeURIComponent(d.gateway.id)}`}>{d.gateway.id}</a> ({d.gateway.address})
              </dd>
            </div>
          )}
          {d.disabled && (
            <div>
              <dt>{t('disabled')}</dt>
              <dd>{t('yes')}</dd>
            </div>
          )}
        </dl>
      </section>

      <section aria-labelledby="values-h">
        <h2 id="values-h">{t('currentValues')}</h2>
        <ErrorText error={attrs.error} />
        <table role="table" aria-labelledby="values-h">
          <ColumnHeads keys={['attribute', 'value', 'source', 'updated']} />
          <tbody>
            {rows.map((a) => (
              <tr key={a.identifier}>
                <th scope="row" title={a.identifier}>
                  {nameOf(a.identifier)}
                </th>
                <td>{formatValue(a.value, modelOf[a.identifier])}</td>
                <td>{SOURCE_KEY[a.attr_type] ? t(SOURCE_KEY[a.attr_type] as Key) : a.attr_type}</td>
                <td>{formatTime(a.ts)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>

      <History
        deviceId={id}
        identifiers={numericIdentifiers(rows, modelOf)}
        nameOf={nameOf}
        unitOf={(i) => modelOf[i]?.unit}
        livePoint={livePoint}
      />

      {admin && <Control deviceId={id} onDone={attrs.reload} />}
      <Commands deviceId={id} admin={admin} tick={commandsTick} />
      <DataMessages deviceId={id} typeId={typeId} tick={dataTick} />
      <DeviceAlarms deviceId={id} tick={d.alarm?.since ?? 0} />
      <Details device={d} />
      {admin && <Certificate deviceId={id} />}
    </article>
  );
}

/** What can be charted: the type's numeric models and any attribute whose current value is a number, by identifier. */
function numericIdentifiers(
  rows: readonly { identifier: string; value: unknown }[],
  modelOf: Record<string, AttributeModel>,
): string[] {
  const ids = new Set<string>();
  for (const [k, m] of Object.entries(modelOf)) if (m.data_type === 'number') ids.add(k);
  for (const r of rows) if (typeof r.value === 'number') ids.add(r.identifier);
  return [...ids].sort();
}

function toLocalInput(ts: number): string {
  const d = new Date(ts - new Date(ts).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
}

function History({
  deviceId,
  identifiers,
  nameOf,
  unitOf,
  livePoint,
}: {
  deviceId: string;
  identifiers: string[];
  nameOf: (i: string) => string;
  unitOf: (i: string) => string | undefined;
  livePoint: { identifier: string; ts: number; value: unknown } | undefined;
}) {
  const { t, session } = useApp();
  const [choice, setChoice] = useState<RangeChoice>('hour');
  const [selected, setSelected] = useState('');
  const [from, setFrom] = useState(() => toLocalInput(Date.now() - 86_400_000));
  const [to, setTo] = useState(() => toLocalInput(Date.now()));
  const [custom, setCustom] = useState<TimeRange | undefined>(undefined);
  const [data, setData] = useState<[number[], number[]]>([[], []]);
  const [plan, setPlan] = useState<Plan | undefined>(undefined);
  const [xRange, setXRange] = useState<[number, number] | undefined>(undefined);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const identifier = selected && identifiers.includes(selected) ? selected : (identifiers[0] ?? '');
  const idKey = identifiers.join(',');

  useEffect(() => {
    if (!identifier) return undefined;
    if (choice === 'custom' && !custom) return undefined;
    const range = rangeOf(choice, Date.now(), custom);
    let live = true;
    setBusy(true);
    setError('');
    let p: Plan = planFor(range);
    const load = async () => {
      if (p.kind === 'series') {
        const points: { ts: number; value: unknown }[] = [];
        for (let page = 1; page <= p.pages; page++) {
          const batch = await api<{ ts: number; value: unknown }[]>(
            session.token,
            'GET',
            planQuery(deviceId, identifier, range, p, page),
          );
          // More points than can be drawn in the range: buckets show all of it instead of its latest part.
          if (page === 1 && tooDense(range, batch)) {
            p = { kind: 'aggregate', intervalMs: bucketInterval(range.end - range.start) };
            break;
          }
          points.push(...batch);
          if (batch.length < SERIES_PAGE || !live) break;
        }
        if (p.kind === 'series') return toChartData(points);
      }
      const agg = await api<{ series: Record<string, { ts: number; value: number | null }[]> }>(
        session.token,
        'GET',
        planQuery(deviceId, identifier, range, p),
      );
      return toChartData((agg.series[identifier] ?? []).filter((b) => b.value !== null));
    };
    load().then(
      (d) => {
        if (!live) return;
        setData(d);
        setPlan(p);
        setXRange([range.start / 1000, range.end / 1000]);
        setBusy(false);
      },
      (e: Error) => {
        if (!live) return;
        setError(e.message);
        setBusy(false);
      },
    );
    return () => {
      live = false;
    };
  }, [deviceId, identifier, choice, custom, session.token, idKey]);

  // New reports extend a raw-point chart of a relative range as they arrive.
  const seen = useRef<unknown>(undefined);
  useEffect(() => {
    if (!livePoint || livePoint === seen.current) return;
    seen.current = livePoint;
    if (livePoint.identifier !== identifier || choice === 'custom' || plan?.kind !== 'series') return;
    if (typeof livePoint.value !== 'number') return;
    setData(([xs, ys]) => {
      const x = livePoint.ts / 1000;
      if (xs.length && x <= (xs[xs.length - 1] ?? 0)) return [xs, ys];
      const nx = [...xs, x];
      const ny = [...ys, livePoint.value as number];
      return nx.length > MAX_POINTS ? [nx.slice(-MAX_POINTS), ny.slice(-MAX_POINTS)] : [nx, ny];
    });
  }, [livePoint, identifier, choice, plan]);

  const showCustom = (e: Event) => {
    e.preventDefault();
    const r = { start: new Date(from).getTime(), end: new Date(to).getTime() };
    const err = rangeError(r);
    if (err) {
      setError(t(err === 'invalid' ? 'rangeInvalid' : err === 'order' ? 'rangeOrder' : 'rangeTooLong'));
      return;
    }
    setCustom(r);
  };
  const name = identifier ? nameOf(identifier) : '';
  return (
    <section aria-labelledby="history-h">
      <h2 id="history-h">{t('history')}</h2>
      <div class="filters">
        <label>
          {t('range')}
          <select
            aria-label={t('range')}
            value={choice}
            onChange={(e) => setChoice(e.currentTarget.value as RangeChoice)}
          >
            <option value="hour">{t('lastHour')}</option>
            <option value="day">{t('lastDay')}</option>
            <option value="week">{t('lastWeek')}</option>
            <option value="custom">{t('custom')}</option>
          </select>
        </label>
        <label>
          {t('attribute')}
          <select aria-label={t('attribute')} value={identifier} onChange={(e) => setSelected(e.currentTarget.value)}>
            {identifiers.map((i) => (
              <option key={i} value={i}>
                {nameOf(i)}
              </option>
            ))}
          </select>
        </label>
      </div>
      {choice === 'custom' && (
        <form class="filters" onSubmit={showCustom}>
          <label>
            {t('from')}
            <input type="datetime-local" value={from} onInput={(e) => setFrom(e.currentTarget.value)} />
          </label>
          <label>
            {t('to')}
            <input type="datetime-local" value={to} onInput={(e) => setTo(e.currentTarget.value)} />
          </label>
          <button type="submit">{t('show')}</button>
        </form>
      )}
      <ErrorText error={error} />
      {identifier ? (
        <>
          <p class="muted" aria-live="polite">
            {busy
              ? t('loading')
              : plan?.kind === 'aggregate'
                ? `${t('points', { n: data[0].length })} · ${t('aggregated', { interval: intervalText(plan.intervalMs) })}`
                : `${t('points', { n: data[0].length })}${data[0].length >= MAX_POINTS ? ` · ${t('capped', { n: MAX_POINTS })}` : ''}`}
          </p>
          <Chart
            data={data}
            label={name}
            unit={unitOf(identifier)}
            ariaLabel={t('chartOf', { name })}
            xRange={xRange}
          />
        </>
      ) : (
        <p>{t('noNumeric')}</p>
      )}
    </section>
  );
}

function intervalText(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000} d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${ms / 1000} s`;
}

function useAction(): [string, string, (fn: () => Promise<unknown>, okText: string) => Promise<boolean>] {
  const [error, setError] = useState('');
  const [ok, setOk] = useState('');
  const run = async (fn: () => Promise<unknown>, okText: string) => {
    setError('');
    setOk('');
    try {
      await fn();
      setOk(okText);
      return true;
    } catch (e) {
      setError((e as Error).message);
      return false;
    }
  };
  return [error, ok, run];
}

function Control({ deviceId, onDone }: { deviceId: string; onDone: () => void }) {
  const { t, session } = useApp();
  const enc = encodeURIComponent(deviceId);
  const [pushText, setPushText] = useState('{}');
  const [cloudText, setCloudText] = useState('{}');
  const [pushErr, pushOk, runPush] = useAction();
  const [cloudErr, cloudOk, runCloud] = useAction();
  return (
    <div class="two">
      <section aria-labelledby="push-h">
        <h2 id="push-h">{t('pushAttributes')}</h2>
        <form
          onSubmit={async (e) => {
            e.preventDefault();
            if (
              await runPush(
                () => api(session.token, 'POST', `/api/v1/control/device/${enc}/attributes`, parseJsonObject(pushText)),
                t('sent'),
              )
            )
              onDone();
          }}
        >
          <label>
            {t('attributesJson')}
            <textarea
              rows={3}
              value={pushText}
              onInput={(e) => setPushText(e.currentTarget.value)}
              spellcheck={false}
            />
          </label>
          <button type="submit">{t('push')}</button>
          <ErrorText error={pushErr} />
          {pushOk && <span role="status">{pushOk}</span>}
        </form>
      </section>
      <section aria-labelledby="cloud-h">
        <h2 id="cloud-h">{t('cloudAttributes')}</h2>
        <form
          onSubmit={async (e) => {
            e.preventDefault();
            if (
              await runCloud(
                () => api(session.token, 'PUT', `/api/v1/control/device/${enc}/attributes`, parseJsonObject(cloudText)),
                t('saved'),
              )
            )
              onDone();
          }}
        >
          <label>
            {t('cloudJson')}
            <textarea
              rows={3}
              value={cloudText}
              onInput={(e) => setCloudText(e.currentTarget.value)}
              spellcheck={false}
            />
          </label>
          <button type="submit">{t('save')}</button>
          <ErrorText error={cloudErr} />
          {cloudOk && <span role="status">{cloudOk}</span>}
        </form>
      </section>
    </div>
  );
}

function Commands({ deviceId, admin, tick }: { deviceId: string; admin: boolean; tick: number }) {
  const { t, session } = useApp();
  const enc = encodeURIComponent(deviceId);
  const list = useGet<Page<Command>>(`/api/v1/device/${enc}/commands?page=1&page_records=20`);
  const [method, setMethod] = useState('');
  const [params, setParams] = useState('{}');
  const [ttl, setTtl] = useState('');
  const [err, , run] = useAction();
  useEffect(() => {
    if (tick) list.reload();
  }, [tick]);
  const pending = list.data?.items.some((c) => !FINAL_STATES.has(c.state)) ?? false;
  // The command log is the truth (docs/device-protocol.md §10): poll it while a command is open, each
  // second while one waits for its reply, every 5 s while they only wait for the device to connect.
  const waiting = list.data?.items.some((c) => c.state === 'sent') ?? false;
  useInterval(list.reload, waiting ? 1000 : pending ? 5000 : null);
  return (
    <section aria-labelledby="commands-h">
      {admin && (
        <>
          <h2 id="send-h">{t('sendCommand')}</h2>
          <form
            aria-labelledby="send-h"
            class="filters"
            onSubmit={async (e) => {
              e.preventDefault();
              const body: Record<string, unknown> = { method: method.trim() };
              await run(async () => {
                body.params = parseJsonObject(params);
                if (ttl.trim()) body.ttl = Number(ttl);
                await api(session.token, 'POST', `/api/v1/control/device/${enc}/command`, body);
              }, t('sent'));
              list.reload();
            }}
          >
            <label>
              {t('method')}
              <input required value={method} onInput={(e) => setMethod(e.currentTarget.value)} />
            </label>
            <label>
              {t('params')}
              <textarea rows={2} value={params} onInput={(e) => setParams(e.currentTarget.value)} spellcheck={false} />
            </label>
            <label>
              {t('ttl')}
              <input
                type="number"
                min={1}
                inputMode="numeric"
                value={ttl}
                onInput={(e) => setTtl(e.currentTarget.value)}
              />
            </label>
            <button type="submit">{t('send')}</button>
          </form>
          <ErrorText error={err} />
        </>
      )}
      <h2 id="commands-h">{t('commands')}</h2>
      <ErrorText error={list.error} />
      <table role="table" aria-labelledby="commands-h">
        <ColumnHeads keys={['commandId', 'method', 'paramsCol', 'state', 'reply', 'time']} />
        <tbody>
          {list.data?.items.map((c) => (
            <tr key={c.id}>
              <td>{c.command_id}</td>
              <td>{c.method}</td>
              <td>
                <code>{JSON.stringify(c.params)}</code>
              </td>
              <td class={`state state-${c.state}`}>{c.state}</td>
              <td>
                <code>{c.reply === null || c.reply === undefined ? (c.error ?? '') : JSON.stringify(c.reply)}</code>
              </td>
              <td>{formatTime(c.create_time)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function DataMessages({ deviceId, typeId, tick }: { deviceId: string; typeId: string | null; tick: number }) {
  const { t } = useApp();
  const streams = useGet<{ items: DataStream[] }>(
    typeId ? `/api/v1/device_type/${encodeURIComponent(typeId)}/data_streams` : null,
  );
  const [stream, setStream] = useState('');
  const ids = streams.data?.items.map((s) => s.identifier) ?? [];
  const current = stream && ids.includes(stream) ? stream : (ids[0] ?? '');
  const list = useGet<Page<DataMessage>>(
    current
      ? `/api/v1/device/${encodeURIComponent(deviceId)}/data/${encodeURIComponent(current)}/messages?page=1&page_records=20`
      : null,
  );
  useEffect(() => {
    if (tick) list.reload();
  }, [tick]);
  return (
    <section aria-labelledby="data-h">
      <h2 id="data-h">{t('dataMessages')}</h2>
      {ids.length === 0 ? (
        <p>{t('noStreams')}</p>
      ) : (
        <>
          <label>
            {t('stream')}
            <select aria-label={t('stream')} value={current} onChange={(e) => setStream(e.currentTarget.value)}>
              {streams.data?.items.map((s) => (
                <option key={s.identifier} value={s.identifier}>
                  {s.name || s.identifier} ({s.format})
                </option>
              ))}
            </select>
          </label>
          <ErrorText error={list.error} />
          <table role="table" aria-labelledby="data-h">
            <ColumnHeads keys={['time', 'direction', 'transport', 'size', 'data', 'hex']} />
            <tbody>
              {list.data?.items.map((m) => (
                <tr key={m.id}>
                  <td>{formatTime(m.ts)}</td>
                  <td>{m.direction}</td>
                  <td>{m.transport}</td>
                  <td>{m.size}</td>
                  <td>
                    <code>{m.format === 'hex' ? formatHex(m.data) : m.data}</code>
                  </td>
                  <td>
                    <code class="hex">{formatHex(m.hex)}</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}

function DeviceAlarms({ deviceId, tick }: { deviceId: string; tick: number }) {
  const { t } = useApp();
  const list = useGet<Page<AlarmLog>>(
    `/api/v1/device/${encodeURIComponent(deviceId)}/alarm_logs?active=1&page_records=20`,
  );
  useEffect(() => {
    if (tick) list.reload();
  }, [tick]);
  const items = list.data?.items ?? [];
  return (
    <section aria-labelledby="dev-alarms-h">
      <h2 id="dev-alarms-h">{t('activeAlarms')}</h2>
      {items.length === 0 ? (
        <p>{t('none')}</p>
      ) : (
        <ul>
          {items.map((a) => (
            <li key={a.id}>
              <LevelText level={a.alarm_level} /> {String(a.alarm_info.rule_name ?? '')} —{' '}
              {String(a.alarm_info.message ?? '')} ({formatTime(a.create_time)})
            </li>
          ))}
        </ul>
      )}
      <a href="#/alarms">{t('alarms')}</a>
    </section>
  );
}

interface ExtendInfo {
  id: string;
  name: string;
  info_type: string;
  value: unknown;
}

function Details({ device }: { device: Device }) {
  const { t } = useApp();
  const tree = useGet<{ items: Group[] }>('/api/v1/device_groups_tree');
  const infos = useGet<{ items: ExtendInfo[] }>(`/api/v1/device/${encodeURIComponent(device.id)}/extend_infos`);
  const groupNames = useMemo(() => {
    const all = flattenGroups(tree.data?.items ?? []);
    return (device.groups ?? []).map((g) => all.find((x) => x.id === g)?.name ?? g);
  }, [tree.data, device.groups]);
  return (
    <div class="two">
      <section aria-labelledby="tags-h">
        <h2 id="tags-h">{t('tags')}</h2>
        <KeyValues map={device.tags ?? {}} />
        <h2 id="groups-h">{t('groups')}</h2>
        {groupNames.length ? (
          <ul aria-labelledby="groups-h">
            {groupNames.map((g) => (
              <li key={g}>{g}</li>
            ))}
          </ul>
        ) : (
          <p>{t('none')}</p>
        )}
      </section>
      <section aria-labelledby="ext-h">
        <h2 id="ext-h">{t('extendInfos')}</h2>
        <ErrorText error={infos.error} />
        <dl class="kv">
          {infos.data?.items.map((i) => (
            <div key={i.id}>
              <dt>{i.name}</dt>
              <dd>
                {i.value === null || i.value === undefined
                  ? '—'
                  : typeof i.value === 'object'
                    ? Object.entries(i.value as Record<string, unknown>)
                        .map(([k, v]) => `${k}: ${String(v)}`)
                        .join(', ') || '—'
                    : String(i.value)}
              </dd>
            </div>
          ))}
        </dl>
      </section>
    </div>
  );
}

function Certificate({ deviceId }: { deviceId: string }) {
  const { t, session } = useApp();
  const [cert, setCert] = useState<{ access_token: string; project_key: string } | undefined>(undefined);
  const [shown, setShown] = useState(false);
  const [error, setError] = useState('');
  const toggle = async () => {
    if (shown) {
      setShown(false);
      return;
    }
    try {
      setCert(await api(session.token, 'GET', `/api/v1/device/${encodeURIComponent(deviceId)}/certificate`));
      setShown(true);
    } catch (e) {
      setError((e as Error).message);
    }
  };
  return (
    <section aria-labelledby="cert-h">
      <h2 id="cert-h">{t('certificate')}</h2>
      <dl class="kv">
        <div>
          <dt>{t('accessToken')}</dt>
          <dd>
            <code>{shown && cert ? cert.access_token : t('hidden')}</code>
          </dd>
        </div>
        <div>
          <dt>{t('projectKey')}</dt>
          <dd>
            <code>{shown && cert ? cert.project_key : t('hidden')}</code>
          </dd>
        </div>
      </dl>
      <button type="button" onClick={() => void toggle()}>
        {shown ? t('hideToken') : t('showToken')}
      </button>
      <ErrorText error={error} />
    </section>
  );
}
