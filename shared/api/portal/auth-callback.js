// The auth callback page: the current configuration (credentials are write-only: never
// shown, never prefilled), setting or removing it, and testing a decision.
import { deleteAuthCallback, getAuthCallback, putAuthCallback, testAuthCallback } from './api.js';
import { alertBox, busy, card, confirmAction, field, h, notice, pageHeading, refocus, select, showError } from './dom.js';

/** A plain setting (shown again once saved) or a credential (write-only). */
const plain = (name, label, { type = 'text', required = true, hint } = {}) => ({ name, label, type, required, hint, secret: false });
const credential = (name, label, hint) => ({ name, label, type: 'password', required: true, hint, secret: true });

const AUTH_TYPES = [
  { type: 'none', label: 'None', fields: [] },
  { type: 'bearer', label: 'Bearer token', fields: [credential('token', 'Token')] },
  { type: 'basic', label: 'Basic (user name and password)', fields: [plain('username', 'User name'), credential('password', 'Password')] },
  { type: 'api_key', label: 'API key in a header', fields: [plain('header', 'Header name', { hint: 'For example X-Api-Key.' }), credential('value', 'Header value')] },
  {
    type: 'oauth2_client_credentials',
    label: 'OAuth 2 client credentials',
    fields: [
      plain('tokenUrl', 'Token URL', { type: 'url' }),
      plain('clientId', 'Client id'),
      credential('clientSecret', 'Client secret'),
      plain('scope', 'Scope (optional)', { required: false }),
    ],
  },
  { type: 'hmac', label: 'HMAC (Standard Webhooks headers)', fields: [credential('secret', 'Signing secret', '16 to 128 printable ASCII characters, no spaces.')] },
];

const REASONS = {
  allowed: 'the callback said yes',
  no_callback_configured: 'no auth callback is configured',
  unknown_merchant: 'the merchant is unknown',
  blocked_url: 'the callback URL is not allowed',
  timeout: 'the callback did not answer in time',
  connect_error: 'could not connect to the callback',
  not_truthy: 'the answer did not look like a yes',
  token_error: 'no OAuth 2 token could be obtained',
  response_too_large: 'the answer was over 16 KiB',
  request_error: 'the exchange with the callback broke',
  store_error: 'the configuration could not be read',
  bad_request: 'the email or action is blank or too long',
};

export function renderAuthCallback(view) {
  const alert = alertBox();
  const config = h('div', {}, h('p', { class: 'loading' }, 'Loading the configuration…'));
  view.append(
    pageHeading('Auth callback'),
    h('p', {}, 'Before a user buys, sells or sees private data, the platform asks this URL whether the user may act. It is allowed only when your callback answers 2xx with a yes, such as true or {"allowed": true}.'),
    alert,
    config,
    testSection(),
  );
  load(config, alert);
}

async function load(config, alert) {
  try {
    config.replaceChildren(configSection(await currentConfig(), () => load(config, alert)));
    refocus(config);
  } catch (error) {
    config.replaceChildren();
    showError(alert, error);
  }
}

/** The stored configuration, or null when there is none (a 404). */
async function currentConfig() {
  try {
    return await getAuthCallback();
  } catch (error) {
    if (error.status === 404) return null;
    throw error;
  }
}

function configSection(config, reload) {
  const alert = alertBox();
  const form = configForm(config, alert, reload);
  const remove = h('button', { type: 'button', class: 'button-danger' }, 'Remove auth callback');
  remove.addEventListener('click', () =>
    busy(remove, alert, async () => {
      if (!(await confirmAction('Remove the auth callback? Every check is then denied.', 'Remove'))) return;
      await deleteAuthCallback();
      notice.show('Auth callback removed.');
      await reload();
    }),
  );
  return card(
    'Configuration',
    summary(config),
    h('h3', {}, config ? 'Replace the configuration' : 'Set up the auth callback'),
    form,
    config ? h('div', { class: 'actions' }, remove) : null,
  );
}

function summary(config) {
  if (!config) return h('p', { class: 'empty' }, 'No auth callback is configured: every check is denied.');
  const kind = AUTH_TYPES.find((t) => t.type === config.auth.type);
  const shown = (kind?.fields ?? []).filter((f) => !f.secret && config.auth[f.name]).map((f) => `${f.label}: ${config.auth[f.name]}`);
  const pairs = [
    ['URL', config.url],
    ['Authentication', [kind?.label ?? config.auth.type, ...shown].join('; ')],
    ['Timeout', config.timeoutMs ? `${config.timeoutMs} ms` : 'Platform default'],
    ['Decision cache', config.cacheTtlSeconds ? `${config.cacheTtlSeconds} s` : 'None'],
  ];
  return h('dl', { class: 'facts' }, pairs.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function configForm(config, alert, reload) {
  const url = h('input', { type: 'url', name: 'url', required: true, maxlength: '2048', autocomplete: 'off', value: config?.url ?? '' });
  const type = select('type', AUTH_TYPES.map((t) => [t.type, t.label]), config?.auth.type ?? 'none');
  const groups = AUTH_TYPES.filter((t) => t.fields.length).map((t) => authGroup(t, config?.auth));
  const timeout = h('input', { type: 'number', name: 'timeoutMs', min: '100', max: '5000', inputmode: 'numeric', value: config?.timeoutMs ?? '' });
  const ttl = h('input', { type: 'number', name: 'cacheTtlSeconds', min: '0', max: '3600', inputmode: 'numeric', value: config?.cacheTtlSeconds ?? '' });
  const save = h('button', { type: 'submit' }, 'Save auth callback');
  const showGroup = () => {
    for (const group of groups) group.hidden = group.disabled = group.dataset.type !== type.value;
  };
  type.addEventListener('change', showGroup);
  showGroup();
  const form = h(
    'form',
    {},
    field('Callback URL', url, 'An https URL that answers POST {"email", "action"}.'),
    field('Authentication', type),
    groups,
    h('p', { class: 'hint' }, 'Credentials are write-only: they are never shown again, so enter them each time you save.'),
    h('div', { class: 'row' }, field('Timeout in ms (optional)', timeout, '100 to 5000; 3000 when empty.'), field('Cache allowed decisions, seconds (optional)', ttl, '0 to 3600; no caching when empty.')),
    alert,
    h('div', { class: 'actions' }, save),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    busy(save, alert, async () => {
      await putAuthCallback(configBody(form, type.value));
      notice.show('Auth callback saved.');
      await reload();
    });
  });
  return form;
}

/** The inputs of one auth type; plain settings prefilled from `auth`, credentials empty. */
function authGroup(kind, auth) {
  const inputs = kind.fields.map((f) => {
    const value = !f.secret && auth?.type === kind.type ? auth[f.name] : '';
    const input = h('input', { type: f.type, name: f.name, required: f.required, autocomplete: f.secret ? 'new-password' : 'off', spellcheck: 'false', value: value ?? '' });
    return field(f.label, input, f.hint);
  });
  return h('fieldset', { 'data-type': kind.type }, h('legend', {}, kind.label), inputs);
}

function configBody(form, type) {
  const data = new FormData(form);
  const auth = { type };
  for (const f of AUTH_TYPES.find((t) => t.type === type).fields) {
    const value = String(data.get(f.name) ?? '');
    if (value !== '') auth[f.name] = value;
  }
  const body = { url: String(data.get('url')).trim(), auth };
  for (const name of ['timeoutMs', 'cacheTtlSeconds']) if (data.get(name)) body[name] = Number(data.get(name));
  return body;
}

function testSection() {
  const alert = alertBox();
  const email = h('input', { type: 'email', name: 'email', required: true, autocomplete: 'off' });
  const action = h('input', { type: 'text', name: 'action', list: 'auth-actions', value: 'view_private' });
  const actions = h('datalist', { id: 'auth-actions' }, ['buy', 'sell', 'view_private'].map((a) => h('option', { value: a })));
  const run = h('button', { type: 'submit' }, 'Test');
  const result = h('div', { role: 'status', class: 'result' });
  const form = h('form', {}, h('div', { class: 'row' }, field('User email', email), field('Action', action, 'For example buy, sell or view_private.')), actions, alert, h('div', { class: 'actions' }, run), result);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    busy(run, alert, async () => {
      result.replaceChildren();
      const body = { email: email.value.trim() };
      if (action.value.trim()) body.action = action.value.trim();
      result.replaceChildren(decision(await testAuthCallback(body)));
    });
  });
  return card('Test the auth callback', h('p', {}, 'Calls your callback as the platform would, with the saved configuration, and shows the decision.'), form);
}

function decision({ allowed, reason, latencyMs, cached }) {
  const http = /^http_status_(\d+)$/.exec(reason);
  const why = http ? `the callback answered HTTP ${http[1]}` : REASONS[reason];
  const pairs = [
    ['Decision', h('span', { class: `badge badge-${allowed ? 'succeeded' : 'failed'}` }, allowed ? 'Allowed' : 'Denied')],
    ['Reason', h('span', {}, h('code', {}, reason), why ? ` (${why})` : '')],
    ['Latency', `${latencyMs} ms`],
    ['Cached', cached ? 'Yes' : 'No'],
  ];
  return h('dl', { class: 'facts' }, pairs.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}
