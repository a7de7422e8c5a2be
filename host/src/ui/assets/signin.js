// The sign-in form: the admin token or a workspace secret key, kept for
// this tab only. The field has no name and the form no action, so the
// credential cannot end up in a URL even if a submit slipped through.

import { session } from './api.js';
import { alert, h } from './dom.js';

export function render({ message, onSignedIn }) {
  const input = h('input', {
    id: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true, autofocus: true,
    placeholder: 'admin token or mesh_sec_…', 'aria-label': 'Token',
  });
  const form = h('form', {
    class: 'signin-form', novalidate: true,
    onsubmit: (e) => {
      e.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      input.value = '';
      session.signIn(token);
      onSignedIn();
    },
  },
  h('label', { for: 'token' }, 'Token'),
  input,
  h('button', { type: 'submit', class: 'btn btn-primary', id: 'signin' }, 'Sign in'));
  return h('div', { class: 'signin' },
    h('div', { class: 'signin-card' },
      h('div', { class: 'brand brand-large' }, h('img', { src: '/ui/favicon.svg', alt: '', width: 28, height: 28 }), 'Switchboard'),
      h('p', { class: 'muted' }, 'Sign in with the admin token or a workspace secret key (', h('code', {}, 'mesh_sec_…'), ').'),
      message && alert({ message }),
      form,
      h('p', { class: 'small muted' },
        'The token stays in this browser tab (session storage) and is sent only to this server, in the Authorization header. Closing the tab forgets it.')));
}
