// The dashboard's shell: who is signed in, the navigation, and the hash
// router that picks a screen. Routes (`#/ws/<id>/events/<id>`) carry ids and
// filters only, never a credential.

import { ApiError, get, session, whenUnauthorized } from './api.js';
import { alert, fill, h, link, loading } from './dom.js';
import * as signin from './signin.js';
import * as workspaces from './workspaces.js';
import * as events from './events.js';
import * as event from './event.js';
import * as replay from './replay.js';
import * as connections from './connections.js';
import * as rules from './rules.js';
import * as connectors from './connectors.js';

const ROUTES = [
  ['workspaces', workspaces.render],
  ['ws/:ws/events', events.render],
  ['ws/:ws/events/:event', event.render],
  ['ws/:ws/connections', connections.render],
  ['ws/:ws/rules', rules.render],
  ['ws/:ws/replays', replay.renderForm],
  ['ws/:ws/replays/:replay', replay.renderProgress],
  ['connectors', connectors.render],
];

const root = document.getElementById('app');
// Who the token belongs to: {role: 'admin' | 'workspace', workspace?}; null until asked.
let identity = null;
const workspaceNames = new Map();
// The screen on show: its leave hooks run before the next one renders.
let current = { leave: [] };

function parseHash() {
  const raw = window.location.hash.replace(/^#\/?/, '');
  const [path, qs] = raw.split('?');
  const segments = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { segments, query: Object.fromEntries(new URLSearchParams(qs || '')) };
}

function match(segments) {
  for (const [pattern, screen] of ROUTES) {
    const parts = pattern.split('/');
    if (parts.length !== segments.length) continue;
    const params = {};
    if (parts.every((p, i) => (p.startsWith(':') ? ((params[p.slice(1)] = segments[i]), true) : p === segments[i]))) {
      return { screen, params };
    }
  }
  return null;
}

// The token is checked by asking for the workspace list (every valid
// credential may); admin rights by the connector registry (admin only).
async function identify() {
  const list = await get('/api/v1/workspaces', { limit: 200 });
  list.records.forEach((w) => workspaceNames.set(w.id, w.name));
  try {
    await get('/api/v1/connectors');
    return { role: 'admin' };
  } catch (e) {
    if (e instanceof ApiError && e.status === 403) return { role: 'workspace', workspace: list.records[0]?.id };
    throw e;
  }
}

function signOut(message) {
  session.signOut();
  identity = null;
  workspaceNames.clear();
  leaveScreen();
  fill(root, signin.render({ message, onSignedIn: () => render() }));
}

function leaveScreen() {
  current.leave.forEach((fn) => fn());
  current = { leave: [] };
}

async function render() {
  leaveScreen();
  if (!session.token()) return signOut();
  if (!identity) {
    fill(root, loading('Signing in…'));
    try {
      identity = await identify();
    } catch (e) {
      if (e.status === 401) return; // whenUnauthorized has shown the sign-in form.
      return fill(root, h('div', { class: 'center' }, alert(e), h('button', { class: 'btn', onclick: render }, 'Try again')));
    }
  }
  const { segments, query } = parseHash();
  const found = match(segments);
  if (!found) {
    const home = identity.role === 'workspace' && identity.workspace ? ['ws', identity.workspace, 'events'] : ['workspaces'];
    window.location.replace('#/' + home.map(encodeURIComponent).join('/'));
    return;
  }
  const main = h('main', { class: 'main' });
  fill(root, h('div', { class: 'shell' }, nav(found.params.ws, segments), main));
  const screen = current;
  const ctx = {
    identity, params: found.params, query, el: main,
    alive: () => screen === current,
    onLeave: (fn) => screen.leave.push(fn),
    // Re-render the same route (after a change), keeping the scroll position.
    refresh: () => render(),
  };
  try {
    await found.screen(ctx);
  } catch (e) {
    if (ctx.alive() && e.status !== 401) main.append(alert(e));
  }
  if (found.params.ws) nameWorkspace(found.params.ws);
}

async function nameWorkspace(wsId) {
  if (!workspaceNames.has(wsId)) {
    try {
      workspaceNames.set(wsId, (await get(`/api/v1/workspaces/${encodeURIComponent(wsId)}`)).name);
    } catch {
      return;
    }
  }
  const slot = document.getElementById('ws-name');
  if (slot) slot.textContent = workspaceNames.get(wsId);
}

function nav(wsId, segments) {
  const here = segments.join('/');
  const item = (target, label, extra = {}) =>
    link(target, label, { class: here.startsWith(target.join('/')) ? 'nav-item active' : 'nav-item', ...extra });
  return h('aside', { class: 'nav' },
    h('div', { class: 'brand' }, h('img', { src: '/ui/favicon.svg', alt: '', width: 20, height: 20 }), 'Switchboard'),
    h('nav', {},
      item(['workspaces'], 'Workspaces', { id: 'nav-workspaces' }),
      wsId && [
        h('div', { class: 'nav-section' },
          h('div', { id: 'ws-name', class: 'ws-name' }, workspaceNames.get(wsId) || 'Workspace'),
          h('code', { class: 'id' }, wsId)),
        item(['ws', wsId, 'events'], 'Events', { id: 'nav-events' }),
        item(['ws', wsId, 'connections'], 'Connections', { id: 'nav-connections' }),
        item(['ws', wsId, 'rules'], 'Rules', { id: 'nav-rules' }),
        item(['ws', wsId, 'replays'], 'Replay', { id: 'nav-replay' }),
      ],
      identity.role === 'admin' && [
        h('div', { class: 'nav-section' }, h('div', { class: 'nav-label' }, 'Registry')),
        item(['connectors'], 'Connectors', { id: 'nav-connectors' }),
      ]),
    h('div', { class: 'nav-foot' },
      h('div', { class: 'who' }, h('span', { class: 'dot' }),
        identity.role === 'admin' ? 'Admin token' : 'Workspace key'),
      h('button', { type: 'button', id: 'signout', class: 'btn btn-small', onclick: () => signOut() }, 'Sign out')));
}

whenUnauthorized((error) => signOut(error.message));
window.addEventListener('hashchange', render);
render();
