// Rules: which events go to which connection, with what action, filter and
// field templates. Read-only here; rules are written through the API.

import { getAll, ws } from './api.js';
import { append, fill, h, header, id, loading, pill, table, time } from './dom.js';
import { json } from './format.js';

export async function render(ctx) {
  const { el, params } = ctx;
  const body = h('div', {}, loading());
  append(el, header('Rules', 'An event matching a rule becomes one delivery to its connection'), body);
  const [{ records, truncated }, connections] = await Promise.all([
    getAll(ws(params.ws, 'rules')),
    getAll(ws(params.ws, 'connections'), {}, 2).catch(() => ({ records: [] })),
  ]);
  if (!ctx.alive()) return;
  const names = new Map(connections.records.map((c) => [c.id, c.name]));
  fill(body,
    table([
      { label: 'Event', cell: (r) => h('span', { class: 'strong' }, r.event) },
      { label: 'ID', cell: (r) => id(r.id) },
      { label: 'Matches', cell: matches },
      { label: 'Connection', cell: (r) => h('span', {}, names.get(r.connection) || '', ' ', id(r.connection)) },
      { label: 'Action', cell: (r) => h('code', {}, r.action) },
      { label: 'Fields', cell: (r) => compact(r.fields) },
      { label: 'State', cell: (r) => pill(r.active ? 'active' : 'disabled', r.active ? 'active' : 'inactive') },
      { label: 'Updated', cell: (r) => time(r.updated_at) },
    ], records, {
      empty: 'No rules yet. Create one with POST /api/v1/workspaces/{ws}/rules.',
      rowProps: (r) => ({ class: 'rule-row', dataset: { id: r.id } }),
    }),
    truncated && h('p', { class: 'muted small' }, `Showing the first ${records.length}.`));
}

function matches(r) {
  const parts = [];
  if (r.resource) parts.push(h('div', {}, h('span', { class: 'muted' }, 'resource '), h('code', {}, r.resource)));
  if (r.resource_id) parts.push(h('div', {}, h('span', { class: 'muted' }, 'resource_id '), h('code', {}, r.resource_id)));
  if (r.filter) parts.push(h('details', { class: 'inline' }, h('summary', {}, 'filter'), json(r.filter)));
  return parts.length ? parts : h('span', { class: 'muted' }, 'every such event');
}

function compact(value) {
  if (value === null || value === undefined) return h('span', { class: 'muted' }, '—');
  const keys = typeof value === 'object' ? Object.keys(value) : [];
  if (typeof value === 'object' && !keys.length) return h('span', { class: 'muted' }, '{}');
  return h('details', { class: 'inline' }, h('summary', {}, keys.length ? keys.join(', ') : 'template'), json(value));
}
