// Replay: queue again, in bulk, the deliveries in one status (optionally of
// one connection), then watch the job: the API answers at once and the job
// runs in the background (`pending` → `running` → `completed`), so its
// page polls every half second until it completes.

import { get, getAll, post, ws } from './api.js';
import { alert, append, facts, fill, h, header, id, link, loading, pill, route, time } from './dom.js';

const POLL_MS = 500;
// Replays started in this tab, newest first (the API has no list of them).
const started = [];

export async function renderForm(ctx) {
  const { el, params } = ctx;
  const connection = h('select', { id: 'replay-connection' }, h('option', { value: '' }, 'Any connection'));
  const status = h('select', { id: 'replay-status', value: 'failed' },
    ['failed', 'completed', 'canceled'].map((s) => h('option', { value: s }, s)));
  const notice = h('div', {});
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', id: 'replay-start' }, 'Start replay');
  const form = h('form', {
    class: 'card form', id: 'replay-form',
    onsubmit: async (e) => {
      e.preventDefault();
      submit.disabled = true;
      notice.replaceChildren();
      try {
        const body = { status: status.value };
        if (connection.value) body.connection = connection.value;
        const job = await post(ws(params.ws, 'replays'), body);
        started.unshift({ ws: params.ws, id: job.id, status: job.status, connection: job.connection, at: job.created_at });
        window.location.hash = route(['ws', params.ws, 'replays', job.id]);
      } catch (err) {
        notice.replaceChildren(alert(err));
        submit.disabled = false;
      }
    },
  },
  h('p', { class: 'muted' },
    'Queues again every delivery of this workspace in the chosen status. Attempt counts are kept, so each replayed delivery gets one more attempt.'),
  h('div', { class: 'form-row' },
    h('label', {}, 'Deliveries that are', status),
    h('label', {}, 'Of connection', connection)),
  notice,
  h('div', { class: 'form-actions' }, submit));
  const mine = started.filter((r) => r.ws === params.ws);
  append(el, header('Replay', 'Send deliveries again in bulk'), form,
    mine.length ? [h('h2', { class: 'section-title' }, 'Started in this tab'), h('ul', { class: 'plain-list' },
      mine.map((r) => h('li', {}, link(['ws', params.ws, 'replays', r.id], id(r.id)), ' ',
        pill(r.status), r.connection ? [' of ', id(r.connection)] : ' of any connection', ' · ', time(r.at))))] : null);
  const { records } = await getAll(ws(params.ws, 'connections'), {}, 2);
  records.forEach((c) => connection.append(h('option', { value: c.id }, `${c.name} (${c.id})`)));
}

export async function renderProgress(ctx) {
  const { el, params } = ctx;
  const panel = h('div', { class: 'card replay', id: 'replay-progress' }, loading());
  append(el,
    h('div', { class: 'crumbs' }, link(['ws', params.ws, 'replays'], '← Replay')),
    header('Replay', id(params.replay)),
    panel);
  let timer = null;
  ctx.onLeave(() => clearTimeout(timer));
  const poll = async () => {
    try {
      const job = await get(ws(params.ws, 'replays', params.replay));
      if (!ctx.alive()) return;
      fill(panel, progress(params.ws, job));
      panel.dataset.replayState = job.state;
      if (job.state !== 'completed') timer = setTimeout(poll, POLL_MS);
    } catch (e) {
      if (!ctx.alive() || e.status === 401) return;
      panel.replaceChildren(alert(e));
      // A transient failure (a 503 while the store is busy) is worth another try.
      if (!e.status || e.status >= 500) timer = setTimeout(poll, POLL_MS * 4);
    }
  };
  await poll();
}

function progress(wsId, job) {
  const done = job.state === 'completed';
  const total = job.total ?? null;
  // Deliveries looked at so far, against those the job selected.
  const fraction = done ? 1 : total ? Math.min(1, job.matched / total) : 0;
  const bar = h('div', { class: `progress${done ? ' done' : ''}${total === null && !done ? ' indeterminate' : ''}` },
    h('div', { class: 'progress-fill' }));
  bar.firstChild.style.width = `${Math.round(fraction * 100)}%`;
  const headline = done
    ? (job.matched ? `Requeued ${job.requeued} of ${job.matched} matching deliveries.` : 'No delivery matched.')
    : total === null ? 'Counting the deliveries to replay…' : `Requeued ${job.requeued} so far; looked at ${job.matched} of ${total}.`;
  return [
    h('div', { class: 'replay-head' }, pill(job.state), h('span', { class: 'strong', id: 'replay-headline' }, headline)),
    bar,
    h('div', { class: 'stats' },
      stat('Selected', total === null ? '…' : total, 'replay-total'),
      stat('Matched', job.matched, 'replay-matched'),
      stat('Requeued', job.requeued, 'replay-requeued'),
      stat('Skipped', done ? job.matched - job.requeued : '…', 'replay-skipped')),
    facts([
      ['Deliveries', pill(job.status)],
      ['Connection', job.connection ? id(job.connection) : 'any'],
      ['Rule', job.rule ? id(job.rule) : 'any'],
      (job.since || job.until) && ['Created', `${job.since || '…'} – ${job.until || '…'}`],
      ['Started', time(job.created_at)],
      ['Updated', time(job.updated_at)],
    ]),
    done && job.requeued
      ? h('p', {}, link(['ws', wsId, 'events'], 'See the events'), ' — the requeued deliveries are attempted now.')
      : null,
  ];
}

function stat(label, value, testId) {
  return h('div', { class: 'stat' }, h('div', { class: 'stat-value', id: testId }, String(value)), h('div', { class: 'stat-label' }, label));
}
