// Showing recorded values: JSON with light highlighting (built from text
// nodes, so a payload stays data), durations, sizes, header maps.

import { h } from './dom.js';

// Pretty JSON as a <pre>, keys and scalars in their own spans.
export function json(value, { className = 'json' } = {}) {
  const pre = h('pre', { class: className });
  write(pre, value, 0);
  return pre;
}

function write(out, value, depth) {
  const pad = '  '.repeat(depth);
  if (Array.isArray(value)) {
    if (!value.length) return out.append('[]');
    out.append('[\n');
    value.forEach((item, i) => {
      out.append(pad + '  ');
      write(out, item, depth + 1);
      out.append(i < value.length - 1 ? ',\n' : '\n');
    });
    out.append(pad + ']');
  } else if (value && typeof value === 'object') {
    const keys = Object.keys(value);
    if (!keys.length) return out.append('{}');
    out.append('{\n');
    keys.forEach((key, i) => {
      out.append(pad + '  ', h('span', { class: 'j-key' }, JSON.stringify(key)), ': ');
      write(out, value[key], depth + 1);
      out.append(i < keys.length - 1 ? ',\n' : '\n');
    });
    out.append(pad + '}');
  } else {
    const kind = value === null ? 'null' : typeof value;
    out.append(h('span', { class: `j-${kind}` }, JSON.stringify(value)));
  }
}

// A response body: JSON when it parses, else the text as it came.
export function body(text) {
  if (!text) return h('div', { class: 'muted small' }, '(empty body)');
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed === 'object') return json(parsed, { className: 'json body' });
  } catch {
    // Not JSON: shown verbatim below.
  }
  return h('pre', { class: 'body' }, text);
}

// A header map as a two-column list.
export function headers(map) {
  const entries = Object.entries(map || {});
  if (!entries.length) return h('div', { class: 'muted small' }, '(no headers)');
  return h('table', { class: 'headers' },
    h('tbody', {}, entries.map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, v)))));
}

export function duration(ms) {
  if (ms === undefined || ms === null) return '—';
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60000)} min`;
}

export function bytes(n) {
  if (n === undefined || n === null) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
