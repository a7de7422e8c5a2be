// A workspace's events, filtered by status, event name and resource_id (the
// filters the API takes), a page at a time following `next_cursor`. The
// filters live in the route, so a filtered view can be reloaded or shared.

import { get, ws } from './api.js';
import { append, fill, h, header, id, link, loading, pill, route, table, time } from './dom.js';

const STATUSES = ['processing', 'completed', 'failed'];
const PAGE = 50;

export async function render(ctx) {
  const { el, params, query } = ctx;
  const list = h('div', {}, loading());
  append(el,
    header('Events', 'Oldest first, as the API pages them',
      h('button', { type: 'button', class: 'btn', onclick: () => ctx.refresh() }, 'Refresh')),
    filters(params.ws, query),
    list);
  const answer = await get(ws(params.ws, 'events'), {
    status: query.status, event: query.event, resource_id: query.resource_id, limit: PAGE, cursor: query.cursor,
  });
  if (!ctx.alive()) return;
  fill(list,
    table([
      { label: 'Event', cell: (e) => link(['ws', params.ws, 'events', e.id], e.event, { class: 'strong event-link' }) },
      { label: 'ID', cell: (e) => link(['ws', params.ws, 'events', e.id], id(e.id)) },
      { label: 'Resource', cell: resource },
      { label: 'Status', cell: (e) => pill(e.status) },
      { label: 'Deliveries', cell: deliveries },
      { label: 'Created', cell: (e) => time(e.created_at) },
    ], answer.records, {
      empty: query.status || query.event || query.resource_id || query.cursor
        ? 'No events match these filters.' : 'No events yet. Emit one with POST /api/v1/events.',
      rowProps: (e) => ({ class: 'event-row', dataset: { id: e.id, status: e.status } }),
    }),
    pager(params.ws, query, answer));
}

function resource(e) {
  return h('span', { class: 'resource' },
    h('span', {}, e.resource),
    e.resource_id ? [h('span', { class: 'muted' }, ' / '), h('span', { class: 'mono' }, e.resource_id)] : null);
}

function deliveries(e) {
  if (!e.total_rules) return h('span', { class: 'muted' }, 'no rule matched');
  return h('span', {},
    `${e.completed_count}/${e.total_rules} delivered`,
    e.failed_count ? h('span', { class: 'text-bad' }, ` · ${e.failed_count} failed`) : null);
}

function filters(wsId, query) {
  const status = h('select', { id: 'filter-status', value: query.status || '' },
    h('option', { value: '' }, 'Any status'),
    STATUSES.map((s) => h('option', { value: s }, s)));
  const event = h('input', { id: 'filter-event', type: 'search', placeholder: 'event name, exact', value: query.event || '' });
  const resourceId = h('input', {
    id: 'filter-resource-id', type: 'search', placeholder: 'resource_id, exact', value: query.resource_id || '',
  });
  const apply = (e) => {
    e.preventDefault();
    window.location.hash = route(['ws', wsId, 'events'], {
      status: status.value, event: event.value.trim(), resource_id: resourceId.value.trim(),
    });
  };
  status.addEventListener('change', apply);
  const active = query.status || query.event || query.resource_id;
  return h('form', { class: 'filters', onsubmit: apply },
    h('label', {}, 'Status', status),
    h('label', {}, 'Event', event),
    h('label', {}, 'Resource ID', resourceId),
    h('button', { type: 'submit', class: 'btn' }, 'Filter'),
    active && link(['ws', wsId, 'events'], 'Clear', { class: 'btn btn-ghost' }));
}

function pager(wsId, query, answer) {
  const base = { status: query.status, event: query.event, resource_id: query.resource_id };
  return h('div', { class: 'pager' },
    h('span', { class: 'muted small' }, `${answer.count} on this page`),
    query.cursor && h('a', { class: 'btn btn-small', href: route(['ws', wsId, 'events'], base) }, '« First page'),
    answer.next_cursor && h('a', {
      class: 'btn btn-small', id: 'next-page', href: route(['ws', wsId, 'events'], { ...base, cursor: answer.next_cursor }),
    }, 'Next page »'));
}
