// Building the page from data without ever parsing data as HTML: every
// string becomes a text node or an attribute value, never markup. Event
// payloads, names and response bodies are tenant-controlled; this module is
// why they cannot run.

const BOOLEAN = new Set(['disabled', 'checked', 'selected', 'open', 'required', 'hidden', 'autofocus']);

// h('a', {href: '#/x', class: 'link', onclick: fn}, 'text', child, [more])
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  let initial;
  for (const [key, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (key.startsWith('on') && typeof v === 'function') {
      el.addEventListener(key.slice(2), v);
    } else if (key === 'dataset') {
      for (const [k, d] of Object.entries(v)) if (d !== undefined && d !== null) el.dataset[k] = String(d);
    } else if (key === 'value') {
      initial = String(v);
    } else if ((key === 'href' || key === 'src') && !/^[#/]/.test(String(v))) {
      // Only links within the app: never a URL that came from data.
      throw new Error(`refusing ${key} ${v}`);
    } else if (BOOLEAN.has(key)) {
      el.toggleAttribute(key, true);
    } else {
      el.setAttribute(key, String(v));
    }
  }
  append(el, children);
  // After the children: a <select> takes a value only once it has the option.
  if (initial !== undefined) el.value = initial;
  return el;
}

// Like `el.append`, but skips null, undefined and false and flattens arrays.
export function append(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// Replace everything inside `el`.
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// A link within the app; segments are encoded, so ids cannot break out.
export function link(segments, text, props = {}) {
  return h('a', { href: route(segments), ...props }, text);
}

export function route(segments, query) {
  const path = '#/' + segments.map((s) => encodeURIComponent(s)).join('/');
  const qs = query ? new URLSearchParams(Object.entries(query).filter(([, v]) => v)).toString() : '';
  return qs ? `${path}?${qs}` : path;
}

// An id in monospace, selectable in one click.
export function id(text) {
  return text ? h('code', { class: 'id', title: text }, text) : h('span', { class: 'muted' }, '—');
}

const TONES = {
  completed: 'ok', delivered: 'ok', active: 'ok',
  failed: 'bad', rejected_client_error: 'bad', mapping_error: 'bad', connector_error: 'bad',
  egress_denied: 'bad', auth_failed: 'bad', blocked: 'bad', rolled_back: 'bad', live: 'ok',
  retrying: 'warn', pending: 'warn', rejected_server_error: 'warn', rate_limited: 'warn',
  timeout: 'warn', network_error: 'warn', internal_error: 'warn', interrupted: 'warn',
  processing: 'info', running: 'info', rolling_out: 'info', pending_approval: 'warn',
  waiting: 'muted', paused: 'muted', canceled: 'muted', disabled: 'muted',
};

export function pill(status, label) {
  const tone = TONES[status] || 'muted';
  return h('span', { class: `pill pill-${tone}`, dataset: { status } }, label || String(status).replaceAll('_', ' '));
}

// A relative time, with the absolute one on hover.
export function time(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return h('span', {}, iso);
  return h('time', { datetime: iso, title: at.toLocaleString() + ' (' + iso + ')' }, relative(at));
}

export function relative(at, now = Date.now()) {
  const s = Math.round((at.getTime() - now) / 1000);
  const a = Math.abs(s);
  const say = (n, unit) => (s < 0 ? `${n}${unit} ago` : `in ${n}${unit}`);
  if (a < 5) return s < 0 || s === 0 ? 'just now' : 'in a moment';
  if (a < 60) return say(a, 's');
  if (a < 3600) return say(Math.round(a / 60), 'm');
  if (a < 86400) return say(Math.round(a / 3600), 'h');
  return say(Math.round(a / 86400), 'd');
}

// A table: columns are {label, cell(row) -> node|string, class?}.
export function table(columns, rows, { empty = 'Nothing here yet.', rowProps } = {}) {
  if (!rows.length) return h('div', { class: 'empty' }, empty);
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'grid' },
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c.class }, c.label)))),
      h('tbody', {}, rows.map((row) =>
        h('tr', rowProps ? rowProps(row) : {}, columns.map((c) => h('td', { class: c.class }, c.cell(row))))))));
}

// An API error (or any error) as the API worded it.
export function alert(error, tone = 'bad') {
  const message = error && error.message ? error.message : String(error);
  const code = error && error.status ? `${error.status}${error.code ? ' ' + error.code : ''}` : null;
  return h('div', { class: `alert alert-${tone}`, role: 'alert' },
    code && h('span', { class: 'alert-code' }, code), h('span', { class: 'alert-message' }, message));
}

export function loading(what = 'Loading…') {
  return h('div', { class: 'loading' }, what);
}

// A page header: title, subtitle and actions on the right.
export function header(title, subtitle, ...actions) {
  return h('div', { class: 'page-head' },
    h('div', {}, h('h1', {}, title), subtitle && h('div', { class: 'subtitle' }, subtitle)),
    h('div', { class: 'actions' }, actions));
}

// A button that shows it is busy while `action` runs and reports a failure
// next to itself (in `messageEl`).
export function actionButton(label, action, { class: cls = 'btn', messageEl, ...props } = {}) {
  const button = h('button', { type: 'button', class: cls, ...props }, label);
  button.addEventListener('click', async () => {
    button.disabled = true;
    if (messageEl) messageEl.replaceChildren();
    try {
      await action();
    } catch (e) {
      if (messageEl) messageEl.replaceChildren(alert(e));
      else console.error(e);
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

// Definition list from [label, value] pairs (values may be nodes).
export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}
