// Workspaces: every workspace for the admin (who may create one), only its
// own for a workspace key — the API decides, this screen shows its answer.

import { getAll, post } from './api.js';
import { alert, append, fill, h, header, id, link, loading, table, time } from './dom.js';

export async function render(ctx) {
  const { el, identity } = ctx;
  const body = h('div', {}, loading());
  const notice = h('div', {});
  append(el, header('Workspaces', identity.role === 'admin' ? 'Every workspace on this server' : 'The workspace your key belongs to'),
    identity.role === 'admin' ? createForm(ctx, notice) : null, notice, body);
  const { records, truncated } = await getAll('/api/v1/workspaces');
  fill(body,
    table([
      { label: 'Name', cell: (w) => link(['ws', w.id, 'events'], w.name, { class: 'strong' }) },
      { label: 'ID', cell: (w) => id(w.id) },
      { label: 'Created', cell: (w) => time(w.created_at) },
      { label: '', class: 'right', cell: (w) => [
        link(['ws', w.id, 'events'], 'Events'), ' · ', link(['ws', w.id, 'connections'], 'Connections')] },
    ], records, {
      empty: 'No workspaces yet.',
      rowProps: (w) => ({ class: 'workspace-row', dataset: { id: w.id } }),
    }),
    truncated && h('p', { class: 'muted small' }, `Showing the first ${records.length}.`));
}

function createForm(ctx, notice) {
  const name = h('input', { type: 'text', id: 'new-workspace', placeholder: 'New workspace name', maxlength: 200, required: true });
  return h('form', {
    class: 'inline-form',
    onsubmit: async (e) => {
      e.preventDefault();
      notice.replaceChildren();
      try {
        const created = await post('/api/v1/workspaces', { name: name.value });
        name.value = '';
        await ctx.refresh();
        // After the refresh: the keys are shown once, above the fresh list.
        const slot = document.querySelector('.page-head');
        if (slot) slot.after(keys(created));
      } catch (err) {
        notice.replaceChildren(alert(err));
      }
    },
  }, name, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create workspace'));
}

// A new workspace's keys, shown this once (the API never shows them again).
function keys(created) {
  return h('div', { class: 'callout' },
    h('strong', {}, `Created ${created.name}. `),
    'Copy its keys now: they are not shown again.',
    h('dl', { class: 'facts' },
      h('dt', {}, 'Workspace'), h('dd', {}, id(created.id)),
      h('dt', {}, 'Publishable key'), h('dd', {}, h('code', { class: 'secret' }, created.publishable_key)),
      h('dt', {}, 'Secret key'), h('dd', {}, h('code', { class: 'secret' }, created.secret_key))));
}
