// One event: what was emitted (its payload, as the tenant sent it), and for
// each delivery every attempt as recorded, with Retry and Cancel. The
// deliveries refresh by themselves: quickly while an attempt is running or
// due, slowly otherwise, and not at all once the operator leaves.

import { get, getAll, post, ws } from './api.js';
import { append, facts, fill, h, header, id, link, pill, time } from './dom.js';
import { json } from './format.js';
import { deliveryCard } from './attempts.js';

const FAST_MS = 1000;
const SLOW_MS = 10000;
// A retry due this soon counts as imminent: poll fast to show it land.
const IMMINENT_MS = 30000;
const FINAL = new Set(['completed', 'failed', 'canceled']);

export async function render(ctx) {
  const { el, params } = ctx;
  const [event, payload, names] = await Promise.all([
    get(ws(params.ws, 'events', params.event)),
    get(ws(params.ws, 'events', params.event, 'payload')),
    connectionNames(params.ws),
  ]);
  if (!ctx.alive()) return;
  const status = h('span', { id: 'event-status' }, pill(event.status));
  const summary = h('div', {}, eventFacts(event));
  const list = h('section', { id: 'deliveries', class: 'deliveries' });
  const trouble = h('div', { class: 'muted small' });
  append(el,
    h('div', { class: 'crumbs' }, link(['ws', params.ws, 'events'], '← Events')),
    header(h('span', {}, event.event, ' ', status), id(event.id)),
    h('div', { class: 'event-top' },
      h('div', { class: 'card' }, h('h2', {}, 'Event'), summary),
      h('div', { class: 'card' }, h('h2', {}, 'Payload'), json(payload, { className: 'json payload' }))),
    h('h2', { class: 'section-title' }, 'Deliveries'),
    trouble,
    list);

  const view = { expanded: new Map(), messages: new Map(), names, fingerprint: '' };
  let timer = null;
  // Each load supersedes the one before (a Retry reloads at once), so only
  // the latest schedules the next.
  let generation = 0;
  ctx.onLeave(() => clearTimeout(timer));

  const load = async () => {
    const mine = ++generation;
    clearTimeout(timer);
    let next = SLOW_MS;
    try {
      const [fresh, deliveries] = await Promise.all([
        get(ws(params.ws, 'events', params.event)),
        get(ws(params.ws, 'events', params.event, 'deliveries')),
      ]);
      const attempts = await Promise.all(
        deliveries.records.map((d) => get(ws(params.ws, 'deliveries', d.id, 'attempts')).then((a) => a.records)));
      if (!ctx.alive() || mine !== generation) return;
      const fingerprint = JSON.stringify([fresh, deliveries.records, attempts]);
      if (fingerprint !== view.fingerprint) {
        view.fingerprint = fingerprint;
        fill(status, pill(fresh.status));
        fill(summary, eventFacts(fresh));
        draw(list, params.ws, deliveries.records, attempts, view, load);
      }
      trouble.replaceChildren();
      if (deliveries.records.some(imminent)) next = FAST_MS;
    } catch (e) {
      if (!ctx.alive() || mine !== generation || e.status === 401) return;
      trouble.textContent = `Could not refresh: ${e.message}`;
    }
    timer = setTimeout(load, next);
  };
  await load();
}

function imminent(d) {
  if (d.status === 'pending' || d.status === 'processing') return true;
  if (d.status !== 'retrying') return false;
  return !d.next_attempt_at || new Date(d.next_attempt_at).getTime() - Date.now() < IMMINENT_MS;
}

function draw(list, wsId, deliveries, attempts, view, reload) {
  if (!deliveries.length) {
    return fill(list, h('div', { class: 'empty' }, 'This event matched no rule when it was accepted, so it has no deliveries.'));
  }
  fill(list, deliveries.map((d, i) => {
    if (!view.messages.has(d.id)) view.messages.set(d.id, h('div', { class: 'delivery-message' }));
    const message = view.messages.get(d.id);
    // "Queued…" is done with once the retry's attempt has ended; errors stay.
    if (message.dataset.attempts && FINAL.has(d.status) && d.attempt_count > Number(message.dataset.attempts)) {
      message.replaceChildren();
      delete message.dataset.attempts;
    }
    return deliveryCard(d, attempts[i], {
      message,
      connectionName: view.names.get(d.connection),
      expanded: view.expanded,
      retry: async () => {
        await post(ws(wsId, 'deliveries', d.id, 'retry'));
        message.replaceChildren(h('div', { class: 'alert alert-info' }, 'Queued for an immediate attempt.'));
        message.dataset.attempts = String(d.attempt_count);
        await reload();
      },
      cancel: async () => {
        await post(ws(wsId, 'deliveries', d.id, 'cancel'));
        message.replaceChildren(h('div', { class: 'alert alert-info' }, 'Canceled.'));
        await reload();
      },
    });
  }));
}

// Connection names make the cards readable; without them the ids still show.
async function connectionNames(wsId) {
  const names = new Map();
  try {
    const { records } = await getAll(ws(wsId, 'connections'), {}, 2);
    records.forEach((c) => names.set(c.id, c.name));
  } catch {
    // Names are a nicety; the ids are shown regardless.
  }
  return names;
}

function eventFacts(e) {
  return facts([
    ['Status', pill(e.status)],
    ['Resource', e.resource],
    ['Resource ID', e.resource_id ? h('span', { class: 'mono' }, e.resource_id) : h('span', { class: 'muted' }, '—')],
    ['Created', time(e.created_at)],
    ['Emitted by', id(e.created_by)],
    ['Deliveries', `${e.total_rules} · ${e.completed_count} delivered · ${e.failed_count} failed`],
  ]);
}
