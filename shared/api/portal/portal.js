// The merchant portal's entry point: sign-in and sign-out, and hash routing to each page.
import { checkKey, onUnauthorized, session } from './api.js';
import { alertBox, busy, field, h, notice, pageHeading } from './dom.js';
import { renderEndpointList } from './endpoints.js';
import { renderEndpointForm } from './endpoint-form.js';
import { renderEndpointDetail } from './endpoint-detail.js';
import { renderDeliveries } from './deliveries.js';
import { renderAuthCallback } from './auth-callback.js';

const ROUTES = [
  [/^#\/endpoints$/, (view) => renderEndpointList(view)],
  [/^#\/endpoints\/new$/, (view) => renderEndpointForm(view)],
  [/^#\/endpoints\/([^/]+)$/, (view, id) => renderEndpointDetail(view, id)],
  [/^#\/endpoints\/([^/]+)\/edit$/, (view, id) => renderEndpointForm(view, id)],
  [/^#\/endpoints\/([^/]+)\/deliveries$/, (view, id) => renderDeliveries(view, id)],
  [/^#\/auth-callback$/, (view) => renderAuthCallback(view)],
];
const HOME = '#/endpoints';

const viewBox = () => document.getElementById('view');

/** Shows the page for the current hash, or the sign-in form without a key. */
function route() {
  notice.turnPage();
  const signedIn = Boolean(session.key());
  showFrame(signedIn);
  if (!signedIn) return showSignIn();
  const match = ROUTES.map(([pattern, render]) => [location.hash.match(pattern), render]).find(([m]) => m);
  if (!match) return location.replace(HOME);
  const [[, param], render] = match;
  markCurrentNav();
  const view = h('div', { class: 'view' });
  viewBox().replaceChildren(view);
  render(view, param && decodeURIComponent(param));
  view.querySelector('h1')?.focus();
}

/** The main nav and the sign-out button show only to a signed-in merchant. */
function showFrame(signedIn) {
  document.getElementById('main-nav').hidden = !signedIn;
  document.getElementById('sign-out').hidden = !signedIn;
}

function markCurrentNav() {
  for (const link of document.querySelectorAll('#main-nav a')) {
    const current = location.hash.startsWith(link.getAttribute('href'));
    if (current) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

/** The sign-in form; `message` says why the last session ended. */
function showSignIn(message) {
  const alert = alertBox();
  if (message) alert.textContent = message;
  const input = h('input', {
    type: 'password',
    name: 'apiKey',
    required: true,
    autocomplete: 'off',
    spellcheck: 'false',
  });
  const button = h('button', { type: 'submit' }, 'Sign in');
  const form = h(
    'form',
    { class: 'card narrow' },
    field('API key', input, 'Your merchant API key (whk_…). It stays in this browser tab and is forgotten when you sign out or close the tab.'),
    alert,
    h('div', { class: 'actions' }, button),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    busy(button, alert, () => signIn(input.value.trim()));
  });
  viewBox().replaceChildren(h('div', { class: 'view' }, pageHeading('Sign in'), form));
  input.focus();
}

/** Keeps a key the API accepts, then shows the page that was asked for (or the endpoints). */
async function signIn(key) {
  await checkKey(key);
  session.signIn(key);
  route();
}

function signOut() {
  session.signOut();
  showFrame(false);
  showSignIn();
  notice.show('You are signed out.');
}

/** The API refused the session's key (revoked, or mistyped in another tab). */
function sessionEnded(message) {
  showFrame(false);
  notice.show('');
  showSignIn(`Signed out: ${message}. Sign in again.`);
}

function start() {
  onUnauthorized(sessionEnded);
  document.getElementById('sign-out').addEventListener('click', signOut);
  document.querySelector('.skip-link').addEventListener('click', (event) => {
    event.preventDefault();
    document.getElementById('main').focus();
  });
  window.addEventListener('hashchange', route);
  route();
}

start();
