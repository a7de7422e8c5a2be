// A delivery and its attempts as a timeline. Each attempt opens to the
// HTTP steps the connector made, as recorded: request method, URL and
// headers (secrets as placeholders or `[redacted]`), response status,
// headers and body, or the step's error, and how long each took.

import { actionButton, facts, h, id, pill, time } from './dom.js';
import { body, bytes, duration, headers } from './format.js';

const FINAL = new Set(['completed', 'failed', 'canceled']);

// `expanded` remembers the attempts the operator opened or closed, by
// delivery and number, across refreshes; the latest attempt starts open.
export function deliveryCard(d, attempts, { message, connectionName, expanded, retry, cancel }) {
  const actions = h('div', { class: 'actions' },
    actionButton('Retry', retry, { class: 'btn retry', messageEl: message, dataset: { delivery: d.id } }),
    FINAL.has(d.status) ? null : cancelButton(cancel, message, d.id));
  return h('article', { class: 'card delivery', dataset: { id: d.id, status: d.status } },
    h('div', { class: 'delivery-head' },
      h('div', { class: 'delivery-title' },
        pill(d.status),
        h('span', { class: 'strong' }, connectionName || 'Connection'),
        id(d.connection),
        h('span', { class: 'muted' }, `${d.connector}${d.connector_version ? '@' + d.connector_version : ''}`)),
      actions),
    h('div', { class: 'delivery-meta' },
      meta('Delivery', id(d.id)),
      meta('Rule', id(d.rule)),
      meta('Attempts', String(d.attempt_count)),
      d.next_attempt_at && meta('Next attempt', time(d.next_attempt_at)),
      d.last_outcome && meta('Last outcome', pill(d.last_outcome)),
      meta('Updated', time(d.updated_at))),
    // The latest attempt says the same, unless the error came from elsewhere.
    d.last_error && d.last_error !== attempts[attempts.length - 1]?.error
      ? h('div', { class: 'last-error' }, d.last_error) : null,
    message,
    attempts.length
      ? h('ol', { class: 'timeline' }, attempts.map((a, i) => attempt(d.id, a, i === attempts.length - 1, expanded)))
      : h('div', { class: 'empty small' }, d.status === 'waiting'
        ? 'Not attempted yet: its connection is paused.' : 'Not attempted yet.'));
}

// Cancel asks once more before it acts: it cannot be undone.
function cancelButton(cancel, message, deliveryId) {
  let armed = false;
  let timer = null;
  const button = actionButton('Cancel', async () => {
    if (!armed) {
      armed = true;
      button.textContent = 'Confirm cancel';
      button.classList.add('btn-danger');
      timer = setTimeout(() => {
        armed = false;
        button.textContent = 'Cancel';
        button.classList.remove('btn-danger');
      }, 4000);
      return;
    }
    clearTimeout(timer);
    await cancel();
  }, { class: 'btn cancel', messageEl: message, dataset: { delivery: deliveryId } });
  return button;
}

function meta(label, value) {
  return h('span', { class: 'meta' }, h('span', { class: 'meta-label' }, label), value);
}

// The status of the last response, which is the one that decided the outcome.
function responseStatus(a) {
  const answered = a.steps.filter((s) => s.response);
  return answered.length ? answered[answered.length - 1].response.status : null;
}

function attempt(deliveryId, a, latest, expanded) {
  const key = `${deliveryId}#${a.n}`;
  const status = responseStatus(a);
  const details = h('details', { open: expanded.has(key) ? expanded.get(key) : latest });
  const summary = h('summary', {},
    h('span', { class: 'dot' }),
    h('span', { class: 'attempt-n' }, `#${a.n}`),
    pill(a.outcome),
    status !== null ? h('span', { class: `http http-${Math.floor(status / 100)}xx` }, `HTTP ${status}`) : null,
    h('span', { class: 'attempt-text' }, a.error || a.summary || ''),
    h('span', { class: 'attempt-time' }, duration(a.duration_ms), ' · ', time(a.started_at)));
  summary.addEventListener('click', () => expanded.set(key, !details.open));
  details.append(summary, attemptBody(a));
  return h('li', {
    class: `attempt outcome-${a.outcome}`,
    dataset: { n: a.n, outcome: a.outcome, responseStatus: status ?? undefined },
  }, details);
}

function attemptBody(a) {
  return h('div', { class: 'attempt-body' },
    facts([
      ['Started', h('span', { class: 'mono' }, a.started_at)],
      ['Connector', `${a.connector}@${a.connector_version}`],
      a.component_sha256 && ['Component', h('code', { class: 'id', title: a.component_sha256 }, a.component_sha256.slice(0, 16) + '…')],
      a.retry_after_ms !== undefined && ['Retry-After', duration(a.retry_after_ms)],
      a.error && ['Error', h('span', { class: 'text-bad' }, a.error)],
      a.summary && ['Summary', a.summary],
    ]),
    a.logs && a.logs.length ? h('div', { class: 'logs' }, h('h4', {}, 'Connector log'),
      a.logs.map((l) => h('div', { class: `log log-${l.level}` }, h('span', { class: 'log-level' }, l.level), l.message))) : null,
    a.steps.length ? a.steps.map((s, i) => step(s, i, a.steps.length)) : h('div', { class: 'muted small' }, 'No HTTP request was made.'));
}

function step(s, index, count) {
  const r = s.response;
  return h('div', { class: 'step' },
    h('div', { class: 'step-line' },
      count > 1 ? h('span', { class: 'muted' }, `${index + 1}/${count}`) : null,
      h('span', { class: 'method' }, s.request.method),
      h('span', { class: 'url' }, s.request.url),
      r ? h('span', { class: `http http-${Math.floor(r.status / 100)}xx` }, String(r.status)) : null,
      s.error ? pill('failed', s.error.kind.replaceAll('_', ' ')) : null,
      h('span', { class: 'muted' }, duration(s.duration_ms))),
    h('div', { class: 'step-cols' },
      h('div', { class: 'step-col' },
        h('h4', {}, 'Request'),
        headers(s.request.headers),
        h('div', { class: 'muted small' }, `Body: ${bytes(s.request.body_bytes)}`)),
      h('div', { class: 'step-col' },
        h('h4', {}, r ? `Response ${r.status}` : 'No response'),
        r ? [headers(r.headers), body(r.body),
          r.body_truncated ? h('div', { class: 'muted small' }, 'Body cut to its first 4 KiB.') : null]
          : s.error ? h('div', { class: 'text-bad' }, `${s.error.kind}${s.error.message ? ': ' + s.error.message : ''}`) : null)));
}
