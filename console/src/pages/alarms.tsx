/** Alarms: active alarms with acknowledge/clear (with a note), the alarm log, rules and notification targets (docs/http-api.md §3.8, §4.8). */
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, type AlarmLog, type Page } from '../api.ts';
import { useApp, useInterval, useLive } from '../ctx.ts';
import { conditionText, formatTime } from '../format.ts';
import { ColumnHeads, ErrorText, LevelText, LiveBadge, Pager, useGet } from './common.tsx';

interface Rule {
  id: string;
  name: string;
  device_type_id: string;
  enabled: boolean;
  level: number;
  condition: Record<string, unknown>;
  message: string;
}
interface Target {
  id: string;
  name: string;
  kind: string;
  url: string;
  min_level: number;
  enabled: boolean;
}

function NoteDialog({
  title,
  onConfirm,
  onCancel,
}: {
  title: string;
  onConfirm: (note: string) => Promise<void>;
  onCancel: () => void;
}) {
  const { t } = useApp();
  const [note, setNote] = useState('');
  const [error, setError] = useState('');
  const area = useRef<HTMLTextAreaElement>(null);
  useEffect(() => {
    const prev = document.activeElement as HTMLElement | null;
    area.current?.focus();
    return () => prev?.focus();
  }, []);
  return (
    <div class="backdrop">
      <div
        role="dialog"
        aria-modal="true"
        aria-labelledby="dialog-h"
        class="dialog"
        onKeyDown={(e) => {
          if (e.key === 'Escape') onCancel();
          // Modal: Tab cycles within the dialog.
          if (e.key === 'Tab') {
            const items = [
              ...e.currentTarget.querySelectorAll<HTMLElement>('textarea, button, input, select, a[href]'),
            ];
            const first = items[0];
            const last = items[items.length - 1];
            if (e.shiftKey && document.activeElement === first) {
              e.preventDefault();
              last?.focus();
            } else if (!e.shiftKey && document.activeElement === last) {
              e.preventDefault();
              first?.focus();
            }
          }
        }}
      >
        <h2 id="dialog-h">{title}</h2>
        <form
          onSubmit={async (e) => {
            e.preventDefault();
            try {
              await onConfirm(note);
            } catch (err) {
              setError((err as Error).message);
            }
          }}
        >
          <label>
            {t('note')}
            <textarea
              ref={area}
              rows={3}
              maxLength={1024}
              value={note}
              onInput={(e) => setNote(e.currentTarget.value)}
            />
          </label>
          <ErrorText error={error} />
          <div class="buttons">
            <button type="submit">{t('confirm')}</button>
            <button type="button" onClick={onCancel}>
              {t('cancel')}
            </button>
          </div>
        </form>
      </div>
    </div>
  );
}

export function AlarmsPage() {
  const { t, session } = useApp();
  const admin = session.role === 'admin';
  const active = useGet<Page<AlarmLog>>('/api/v1/alarm_logs?active=1&alarm_status=1&page_records=100');
  const [page, setPage] = useState(1);
  const history = useGet<Page<AlarmLog>>(`/api/v1/alarm_logs?page=${page}&page_records=20`);
  const rules = useGet<Page<Rule>>(admin ? '/api/v1/alarm_rules?page_records=500' : null);
  const targets = useGet<{ items: Target[] }>(admin ? '/api/v1/notification_targets' : null);
  const [dialog, setDialog] = useState<{ id: string; action: 'ack' | 'clear' } | undefined>(undefined);
  const refresh = () => {
    active.reload();
    history.reload();
  };
  const live = useLive(['alarm'], undefined, refresh, refresh);
  useInterval(refresh, live ? 60_000 : 5_000);
  return (
    <section aria-labelledby="alarms-h">
      <h1 id="alarms-h">
        {t('alarms')} <LiveBadge open={live} />
      </h1>
      <h2 id="active-h">{t('activeAlarms')}</h2>
      <ErrorText error={active.error} />
      <table role="table" aria-labelledby="active-h">
        <ColumnHeads
          keys={[
            'device',
            'rule',
            'level',
            'message',
            'since',
            'acknowledged',
            ...(admin ? (['actions'] as const) : []),
          ]}
        />
        <tbody>
          {active.data?.items.map((a) => (
            <tr key={a.id}>
              <td>
                <a href={`#/device/${encodeURIComponent(a.device.id)}`}>{a.device.name}</a>
              </td>
              <td>{String(a.alarm_info.rule_name ?? a.rule_id)}</td>
              <td>
                <LevelText level={a.alarm_level} />
              </td>
              <td>{String(a.alarm_info.message ?? '')}</td>
              <td>{formatTime(a.create_time)}</td>
              <td>
                {a.ack ? `${a.ack.by}${a.ack.note ? `: ${a.ack.note}` : ''} (${formatTime(a.ack.time)})` : t('no')}
              </td>
              {admin && (
                <td class="buttons">
                  {!a.ack && (
                    <button type="button" onClick={() => setDialog({ id: a.id, action: 'ack' })}>
                      {t('acknowledge')}
                    </button>
                  )}
                  <button type="button" onClick={() => setDialog({ id: a.id, action: 'clear' })}>
                    {t('clear')}
                  </button>
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      {active.data && active.data.items.length === 0 && <p>{t('none')}</p>}

      <h2 id="history-h">{t('alarmHistory')}</h2>
      <ErrorText error={history.error} />
      <table role="table" aria-labelledby="history-h">
        <ColumnHeads keys={['time', 'device', 'event', 'level', 'rule', 'message', 'note']} />
        <tbody>
          {history.data?.items.map((a) => (
            <tr key={a.id}>
              <td>{formatTime(a.create_time)}</td>
              <td>{a.device.name}</td>
              <td>
                {a.alarm_status === 1
                  ? t('triggered')
                  : `${t('ended')}${a.alarm_info.reason ? ` (${String(a.alarm_info.reason)})` : ''}`}
              </td>
              <td>
                <LevelText level={a.alarm_level} />
              </td>
              <td>{String(a.alarm_info.rule_name ?? a.rule_id)}</td>
              <td>{String(a.alarm_info.message ?? '')}</td>
              <td>{[a.ack?.note, a.clear?.note].filter(Boolean).join(' · ')}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <Pager page={page} pages={history.data?.page_total} setPage={setPage}>
        <span>
          {page} / {Math.max(1, history.data?.page_total ?? 1)}
        </span>
      </Pager>

      {admin && (
        <>
          <h2 id="rules-h">{t('rules')}</h2>
          <ErrorText error={rules.error} />
          <table role="table" aria-labelledby="rules-h">
            <ColumnHeads keys={['name', 'level', 'condition', 'message', 'enabled']} />
            <tbody>
              {rules.data?.items.map((r) => (
                <tr key={r.id}>
                  <td>{r.name}</td>
                  <td>
                    <LevelText level={r.level} />
                  </td>
                  <td>
                    <code>{conditionText(r.condition)}</code>
                  </td>
                  <td>{r.message}</td>
                  <td>{r.enabled ? t('yes') : t('no')}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <h2 id="targets-h">{t('targets')}</h2>
          <ErrorText error={targets.error} />
          <table role="table" aria-labelledby="targets-h">
            <ColumnHeads keys={['name', 'url', 'minLevel', 'enabled']} />
            <tbody>
              {targets.data?.items.map((x) => (
                <tr key={x.id}>
                  <td>{x.name}</td>
                  <td>{x.url}</td>
                  <td>
                    <LevelText level={x.min_level} />
                  </td>
                  <td>{x.enabled ? t('yes') : t('no')}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      {dialog && (
        <NoteDialog
          title={dialog.action === 'ack' ? t('ackTitle') : t('clearTitle')}
          onCancel={() => setDialog(undefined)}
          onConfirm={async (note) => {
            await api(
              session.token,
              'POST',
              `/api/v1/alarm_log/${encodeURIComponent(dialog.id)}/${dialog.action}`,
              note.trim() ? { note: note.trim() } : {},
            );
            setDialog(undefined);
            refresh();
          }}
        />
      )}
    </section>
  );
}
