// The connector registry (admin only): every connector, its versions and
// where each stands (live, waiting for approval and what it asks for,
// rolling out to a share, blocked, rolled back), with Approve, Block and
// Unblock. A workspace key is refused by the API (403); this screen then
// shows the API's message.

import { get, post } from './api.js';
import { actionButton, alert, append, fill, h, header, loading, pill, table } from './dom.js';

export async function render(ctx) {
  const { el } = ctx;
  const body = h('div', {}, loading());
  const notice = h('div', { id: 'connectors-notice' });
  append(el, header('Connectors', 'WebAssembly components registered on this server; blocking a version pauses connections pinned to it'),
    notice, body);
  let list;
  try {
    list = await get('/api/v1/connectors');
  } catch (e) {
    if (ctx.alive()) fill(body, alert(e));
    return;
  }
  const versions = await Promise.all(list.records.map((c) =>
    get(`/api/v1/connectors/${encodeURIComponent(c.name)}/versions`).then((v) => v.records)));
  if (!ctx.alive()) return;
  if (!list.records.length) return fill(body, h('div', { class: 'empty' }, 'No connectors are registered.'));
  fill(body, list.records.map((c, i) => connector(ctx, c, versions[i], notice)));
}

function connector(ctx, c, versions, notice) {
  const m = c.manifest || {};
  return h('section', { class: 'card connector', dataset: { name: c.name } },
    h('div', { class: 'connector-head' },
      h('h2', {}, c.name), h('span', { class: 'muted' }, `latest ${c.latest || '—'}`),
      m.description && h('span', { class: 'connector-desc' }, m.description)),
    table([
      { label: 'Version', class: 'c-version', cell: (v) => h('code', { class: 'strong' }, v.version) },
      { label: 'State', class: 'c-state', cell: state },
      { label: 'Origin', class: 'c-origin', cell: (v) => v.origin },
      { label: 'Artifact', class: 'c-artifact', cell: (v) => v.artifact },
      { label: 'Actions', class: 'c-actions', cell: (v) => (v.manifest.actions || []).map((a) => a.name).join(', ') },
      { label: 'Hosts', class: 'c-hosts', cell: (v) => (v.manifest.allowed_hosts || []).join(', ') || h('span', { class: 'muted' }, 'any') },
      { label: '', class: 'right c-button', cell: (v) => h('span', { class: 'buttons' },
        v.state === 'pending_approval' && approve(ctx, c.name, v, notice), toggle(ctx, c.name, v, notice)) },
    ], [...versions].reverse(), {
      rowProps: (v) => ({ class: 'version-row', dataset: { version: v.version, blocked: v.blocked, state: v.state } }),
    }));
}

function state(v) {
  const label = v.state === 'rolling_out' ? `rolling out ${v.rollout_percent}%` : undefined;
  const wider = [...(v.widened?.hosts || []).map((x) => `host ${x}`), ...(v.widened?.secrets || []).map((x) => `secret ${x}`)];
  return h('span', {}, pill(v.state, label),
    v.state === 'pending_approval' && wider.length ? h('div', { class: 'muted small' }, `asks for ${wider.join(', ')}`) : null);
}

function approve(ctx, name, v, notice) {
  const path = `/api/v1/connectors/${encodeURIComponent(name)}/versions/${encodeURIComponent(v.version)}/approve`;
  return actionButton('Approve', async () => {
    await post(path);
    await ctx.refresh();
    const slot = document.getElementById('connectors-notice');
    if (slot) slot.replaceChildren(h('div', { class: 'alert alert-info' }, `${name}@${v.version} approved.`));
  }, { class: 'btn btn-small btn-approve', messageEl: notice });
}

function toggle(ctx, name, v, notice) {
  const verb = v.blocked ? 'unblock' : 'block';
  const path = `/api/v1/connectors/${encodeURIComponent(name)}/versions/${encodeURIComponent(v.version)}/${verb}`;
  return actionButton(v.blocked ? 'Unblock' : 'Block', async () => {
    const answer = await post(path);
    await ctx.refresh();
    const changed = answer.paused_connections || answer.resumed_connections || [];
    const what = answer.blocked ? 'paused' : 'resumed';
    const slot = document.getElementById('connectors-notice');
    if (slot) {
      slot.replaceChildren(h('div', { class: 'alert alert-info' },
        `${name}@${v.version} ${answer.blocked ? 'blocked' : 'unblocked'}; ${changed.length} connection(s) ${what}`,
        changed.length ? `: ${changed.join(', ')}` : '.'));
    }
  }, { class: v.blocked ? 'btn btn-small' : 'btn btn-small btn-danger-outline', messageEl: notice });
}
