/** Device types with their attribute models and data streams (docs/http-api.md §3.2, §4.2). */
import { useState } from 'preact/hooks';
import type { AttributeModel, DataStream, DeviceType } from '../api.ts';
import { useApp } from '../ctx.ts';
import type { Key } from '../i18n.ts';
import { ColumnHeads, ErrorText, useGet } from './common.tsx';

const CONN: Record<string, Key> = { '1': 'directDevice', '2': 'subDevice', '3': 'gatewayDevice' };

function TypeDetail({ type }: { type: DeviceType }) {
  const { t } = useApp();
  const enc = encodeURIComponent(type.id);
  const models = useGet<{ items: (AttributeModel & { identifier: string })[] }>(
    `/api/v1/device_type/${enc}/attributes`,
  );
  const streams = useGet<{ items: DataStream[] }>(`/api/v1/device_type/${enc}/data_streams`);
  return (
    <div class="type-detail">
      <h3 id={`models-${type.id}`}>{t('attributeModels')}</h3>
      <ErrorText error={models.error} />
      {models.data?.items.length ? (
        <table role="table" aria-labelledby={`models-${type.id}`}>
          <ColumnHeads keys={['identifier', 'name', 'dataType', 'unit', 'options']} />
          <tbody>
            {models.data.items.map((m) => (
              <tr key={m.identifier}>
                <td>
                  <code>{m.identifier}</code>
                </td>
                <td>{m.name}</td>
                <td>{m.data_type}</td>
                <td>{m.unit ?? ''}</td>
                <td>
                  <code>{Object.keys(m.data_options ?? {}).length ? JSON.stringify(m.data_options) : ''}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p>{t('none')}</p>
      )}
      <h3 id={`streams-${type.id}`}>{t('streams')}</h3>
      <ErrorText error={streams.error} />
      {streams.data?.items.length ? (
        <table role="table" aria-labelledby={`streams-${type.id}`}>
          <ColumnHeads keys={['identifier', 'name', 'format']} />
          <tbody>
            {streams.data.items.map((s) => (
              <tr key={s.identifier}>
                <td>
                  <code>{s.identifier}</code>
                </td>
                <td>{s.name}</td>
                <td>{s.format}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p>{t('none')}</p>
      )}
    </div>
  );
}

export function TypesPage() {
  const { t } = useApp();
  const types = useGet<{ items: DeviceType[] }>('/api/v1/device_types');
  const [open, setOpen] = useState<Record<string, boolean>>({});
  return (
    <section aria-labelledby="types-h">
      <h1 id="types-h">{t('deviceTypes')}</h1>
      <ErrorText error={types.error} />
      {types.data?.items.length === 0 && <p>{t('none')}</p>}
      <ul class="cards">
        {types.data?.items.map((ty) => (
          <li key={ty.id} class="card">
            <h2>
              <button
                type="button"
                class="link"
                aria-expanded={!!open[ty.id]}
                onClick={() => setOpen((o) => ({ ...o, [ty.id]: !o[ty.id] }))}
              >
                {ty.name}
              </button>
            </h2>
            <p class="muted">
              {CONN[ty.conn_type] ? t(CONN[ty.conn_type] as Key) : ty.conn_type} · {ty.conn_protocol} ·{' '}
              {t('deviceCount')}: {ty.device_count}
              {ty.descr ? ` · ${ty.descr}` : ''}
            </p>
            {open[ty.id] && <TypeDetail type={ty} />}
          </li>
        ))}
      </ul>
    </section>
  );
}
