// One endpoint's overview: health and state, the signing secret (reveal, copy, rotate),
// a test event, the last 24 hours of deliveries, and deleting it.
import { getSubscription, revealSecret, rotateSecret, sendTestEvent, updateSubscription } from './api.js';
import { alertBox, busy, card, confirmAction, field, h, notice, pageHeading, select, showError, uid } from './dom.js';
import { confirmDelete } from './endpoints.js';
import { healthBadge, lastErrorText, time, words } from './format.js';
import { statsSection } from './stats-chart.js';

/** The heading and tabs every page of one endpoint shares; returns the subtitle to fill. */
export function endpointFrame(view, id, title, current) {
  const heading = pageHeading(title);
  const subtitle = h('p', { class: 'subtitle url' });
  heading.append(subtitle);
  const tabs = [
    ['Overview', `#/endpoints/${id}`],
    ['Deliveries', `#/endpoints/${id}/deliveries`],
    ['Edit', `#/endpoints/${id}/edit`],
  ];
  const links = tabs.map(([label, href]) => h('li', {}, h('a', { href, 'aria-current': label === current ? 'page' : null }, label)));
  view.append(heading, h('nav', { class: 'tabs', 'aria-label': 'This endpoint' }, h('ul', {}, links)));
  return subtitle;
}

export function renderEndpointDetail(view, id) {
  const subtitle = endpointFrame(view, id, 'Endpoint', 'Overview');
  const alert = alertBox();
  const body = h('div', { class: 'loading' }, 'Loading endpoint…');
  view.append(alert, body);
  getSubscription(id).then(
    (sub) => {
      subtitle.textContent = sub.url;
      body.replaceChildren(healthSection(sub), secretSection(sub.id), testSection(sub), statsSection(sub.id), deleteSection(sub));
      body.classList.remove('loading');
    },
    (error) => {
      body.replaceChildren();
      showError(alert, error);
    },
  );
}

function definitions(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(([, v]) => v !== null && v !== '').map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function healthSection(sub) {
  const { health } = sub;
  const alert = alertBox();
  const toggle = h('button', { type: 'button', class: 'button-quiet' }, sub.enabled ? 'Disable endpoint' : 'Enable endpoint');
  const el = card(
    'Health',
    definitions([
      ['Status', healthBadge(health)],
      ['Since', health.since ? time(health.since) : null],
      ['Failures in a row', health.consecutiveFailures ? String(health.consecutiveFailures) : null],
      ['Last error', lastErrorText(health.lastError) || null],
      ['Disabled because', health.disabledReason ?? null],
      ['State', sub.enabled ? 'Enabled: webhooks are sent' : 'Paused: no webhooks are sent'],
      ['Events', sub.events.map(words).join(', ')],
      ['Rate limit', sub.rateLimitPerSecond ? `${sub.rateLimitPerSecond} deliveries a second` : 'None'],
      ['Description', sub.description || null],
    ]),
    alert,
    h('div', { class: 'actions' }, toggle),
  );
  toggle.addEventListener('click', () =>
    busy(toggle, alert, async () => {
      const updated = await updateSubscription(sub.id, { enabled: !sub.enabled });
      notice.show(updated.enabled ? 'Endpoint enabled.' : 'Endpoint paused.');
      const next = healthSection(updated);
      el.replaceWith(next);
      next.querySelector('button').focus();
    }),
  );
  return el;
}

function secretSection(id) {
  const alert = alertBox();
  const output = h('div', { class: 'stack' });
  const reveal = h('button', { type: 'button' }, 'Reveal secret');
  const rotate = h('button', { type: 'button', class: 'button-quiet' }, 'Rotate secret');
  reveal.addEventListener('click', () =>
    busy(reveal, alert, async () => output.replaceChildren(...secretFields(await revealSecret(id), output))),
  );
  rotate.addEventListener('click', () =>
    busy(rotate, alert, async () => {
      const sure = await confirmAction(
        'Rotate the signing secret? The body signature uses the new secret at once; the old secret keeps signing the webhook-signature header for 24 hours.',
        'Rotate secret',
      );
      if (!sure) return;
      const rotated = await rotateSecret(id);
      output.replaceChildren(
        h('p', { class: 'success' }, 'New secret made. The previous one keeps signing the webhook-signature header until ', time(rotated.previousSecretExpiresAt), '.'),
        ...secretFields(rotated, output),
      );
    }),
  );
  return card(
    'Signing secret',
    h('p', {}, 'Verify each webhook with this secret: the body signature with the hex secret, or the Standard Webhooks headers with the whsec_ form.'),
    h('div', { class: 'actions' }, reveal, rotate),
    alert,
    output,
  );
}

function secretFields(secret, output) {
  const hide = h('button', { type: 'button', class: 'button-quiet' }, 'Hide secret');
  hide.addEventListener('click', () => output.replaceChildren());
  return [
    copyField('Secret (hex)', secret.secret),
    copyField('Standard Webhooks secret', secret.standardWebhooksSecret),
    h('div', { class: 'actions' }, hide),
  ];
}

/** A read-only value with a Copy button beside it. */
function copyField(label, value) {
  const input = h('input', { type: 'text', readonly: true, value, class: 'mono', spellcheck: 'false', autocomplete: 'off', id: uid('secret') });
  const status = h('span', { class: 'copy-status', role: 'status' });
  const copy = h('button', { type: 'button', class: 'button-quiet' }, 'Copy', h('span', { class: 'visually-hidden' }, ` ${label}`));
  copy.addEventListener('click', () => copyText(input, status));
  return h('div', { class: 'field' }, h('label', { for: input.id }, label), h('div', { class: 'copy-row' }, input, copy), status);
}

async function copyText(input, status) {
  try {
    await navigator.clipboard.writeText(input.value);
    status.textContent = 'Copied.';
  } catch {
    input.select();
    status.textContent = 'Selected: press Ctrl+C (⌘C on a Mac) to copy.';
  }
}

function testSection(sub) {
  const alert = alertBox();
  const result = h('p', { role: 'status', class: 'result' });
  const options = [['', `The first subscribed event (${words(sub.events[0])})`], ...sub.events.map((name) => [name, words(name)])];
  const eventName = select('eventName', options, '');
  const send = h('button', { type: 'submit' }, 'Send test event');
  const form = h('form', {}, field('Event', eventName), h('div', { class: 'actions' }, send), alert, result);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    busy(send, alert, async () => {
      result.textContent = '';
      const { eventId } = await sendTestEvent(sub.id, eventName.value ? { eventName: eventName.value } : {});
      result.append('Test event ', h('code', {}, eventId), ' queued. ', h('a', { href: `#/endpoints/${sub.id}/deliveries` }, 'See it in the delivery log'), '.');
    });
  });
  return card('Send a test event', h('p', {}, 'A signed test webhook, delivered and retried like any other.'), form);
}

function deleteSection(sub) {
  const alert = alertBox();
  const remove = h('button', { type: 'button', class: 'button-danger' }, 'Delete endpoint');
  remove.addEventListener('click', () =>
    busy(remove, alert, async () => {
      if (!(await confirmDelete(sub))) return;
      notice.carry(`Deleted ${sub.url}.`);
      location.hash = '#/endpoints';
    }),
  );
  return card('Delete endpoint', h('p', {}, 'No more webhooks go to this URL. This cannot be undone.'), alert, h('div', { class: 'actions' }, remove));
}
