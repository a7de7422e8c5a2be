// Connections and their health: active, or paused and why; the version
// each resolves to now; how many of its deliveries failed in the last hour;
// and Resume for a paused one (a PATCH with `active: true`, which is how
// the API resumes a connection).

import { get, getAll, patch, ws } from './api.js';
import { actionButton, append, fill, h, header, id, loading, pill, table, time } from './dom.js';

// The failure count reads one page: a full page is shown as "≥ limit".
const FAILURE_PAGE = 200;
const HOUR_MS = 3600 * 1000;

const REASONS = {
  disabled: 'paused through the API',
  authentication_invalid: 'the destination rejected its credentials; update its secrets or resume it',
  connector_version_blocked: 'the connector version it is pinned to is blocked',
  connector_version_missing: 'the connector version it names is no longer registered',
};

export async function render(ctx) {
  const { el, params } = ctx;
  const body = h('div', {}, loading());
  const notice = h('div', {});
  append(el, header('Connections', 'Health of each destination: paused connections hold their deliveries (status waiting)',
    h('button', { type: 'button', class: 'btn', onclick: () => ctx.refresh() }, 'Refresh')), notice, body);
  const [{ records, truncated }, enabled] = await Promise.all([
    getAll(ws(params.ws, 'connections')),
    get(ws(params.ws, 'connectors')).catch(() => ({ records: [] })),
  ]);
  if (!ctx.alive()) return;
  const resolved = new Map();
  enabled.records.forEach((group) => group.connections.forEach((c) => resolved.set(c.connection, c)));
  const since = new Date(Date.now() - HOUR_MS).toISOString();
  fill(body,
    table([
      { label: 'Name', cell: (c) => h('span', { class: 'strong' }, c.name) },
      { label: 'ID', cell: (c) => id(c.id) },
      { label: 'Connector', cell: (c) => version(c, resolved.get(c.id)) },
      { label: 'Health', cell: (c) => health(c, resolved.get(c.id)) },
      { label: 'Failed (1 h)', class: 'num', cell: (c) => failures(params.ws, c.id, since) },
      { label: 'Limits', cell: limits },
      { label: 'Updated', cell: (c) => time(c.updated_at) },
      { label: '', class: 'right', cell: (c) => (c.active ? null : resume(ctx, params.ws, c, notice)) },
    ], records, {
      empty: 'No connections yet. Create one with POST /api/v1/workspaces/{ws}/connections.',
      rowProps: (c) => ({ class: 'connection-row', dataset: { id: c.id, active: c.active } }),
    }),
    truncated && h('p', { class: 'muted small' }, `Showing the first ${records.length}.`));
}

function version(c, enabled) {
  const now = enabled && enabled.resolved_version;
  return h('span', {},
    h('span', { class: 'strong' }, c.connector), h('span', { class: 'muted' }, '@'), c.version,
    now && now !== c.version ? h('span', { class: 'muted' }, ` → ${now}`) : null);
}

function health(c, enabled) {
  const reason = c.inactive_reason || (enabled && enabled.inactive_reason);
  if (c.active && !reason) return pill('active');
  return h('div', { class: 'health' },
    pill('paused', reason === 'connector_version_missing' ? 'version missing' : 'paused'),
    reason && h('div', { class: 'reason', title: reason }, h('code', {}, reason), ' — ', REASONS[reason] || ''));
}

function limits(c) {
  const parts = [];
  if (c.rate_limit_per_second) parts.push(`${c.rate_limit_per_second}/s`);
  if (c.concurrency) parts.push(`${c.concurrency} at once`);
  return parts.length ? parts.join(' · ') : h('span', { class: 'muted' }, 'defaults');
}

// Filled in when its page arrives, so one slow count does not hold the table.
function failures(wsId, connection, since) {
  const cell = h('span', { class: 'failures muted' }, '…');
  get(ws(wsId, 'deliveries'), { connection, status: 'failed', since, limit: FAILURE_PAGE })
    .then((page) => {
      const full = page.count >= FAILURE_PAGE;
      cell.textContent = full ? `≥${FAILURE_PAGE}` : String(page.count);
      cell.dataset.failures = cell.textContent;
      cell.className = page.count ? 'failures text-bad strong' : 'failures muted';
    })
    .catch((e) => {
      cell.textContent = '?';
      cell.title = e.message;
    });
  return cell;
}

function resume(ctx, wsId, c, notice) {
  return actionButton('Resume', async () => {
    await patch(ws(wsId, 'connections', c.id), { active: true });
    await ctx.refresh();
  }, { class: 'btn btn-small resume', messageEl: notice, dataset: { connection: c.id } });
}
