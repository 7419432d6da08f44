/** The group tree (docs/http-api.md §3.3) as an ARIA tree; each branch has a button that folds it, each group links to its devices. */
import { useState } from 'preact/hooks';
import type { Group } from '../api.ts';
import { useApp } from '../ctx.ts';
import { ErrorText, useGet } from './common.tsx';

function Node({ group, level }: { group: Group; level: number }) {
  const [open, setOpen] = useState(true);
  const hasChildren = group.children.length > 0;
  return (
    <li role="treeitem" aria-level={level} aria-expanded={hasChildren ? open : undefined} aria-label={group.name}>
      <span class="node">
        {hasChildren ? (
          <button
            type="button"
            class="twisty"
            aria-label={group.name}
            aria-expanded={open}
            onClick={() => setOpen(!open)}
          >
            {open ? '▾' : '▸'}
          </button>
        ) : (
          <span class="twisty" aria-hidden="true">
            •
          </span>
        )}
        <a href={`#/devices?group=${encodeURIComponent(group.id)}`}>{group.name}</a>
        {group.descr ? <span class="muted"> — {group.descr}</span> : null}
      </span>
      {hasChildren && open && (
        <ul role="group">
          {group.children.map((c) => (
            <Node key={c.id} group={c} level={level + 1} />
          ))}
        </ul>
      )}
    </li>
  );
}

export function GroupsPage() {
  const { t } = useApp();
  const tree = useGet<{ items: Group[] }>('/api/v1/device_groups_tree');
  return (
    <section aria-labelledby="groups-h">
      <h1 id="groups-h">{t('groupTree')}</h1>
      <ErrorText error={tree.error} />
      {tree.data?.items.length === 0 && <p>{t('noGroups')}</p>}
      <ul role="tree" aria-labelledby="groups-h" class="tree">
        {tree.data?.items.map((g) => (
          <Node key={g.id} group={g} level={1} />
        ))}
      </ul>
    </section>
  );
}
