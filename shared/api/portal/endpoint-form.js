// The form that creates an endpoint (POST) or changes one (PATCH): URL, events,
// description and an optional rate limit.
import { createSubscription, getSubscription, updateSubscription } from './api.js';
import { alertBox, busy, field, h, notice, pageHeading, showError } from './dom.js';
import { OPERATIONAL_EVENTS, ORDER_EVENTS, words } from './format.js';

const OPERATIONAL_HINTS = {
  endpoint_disabled: 'Tells this endpoint when one of your endpoints is disabled after failing for days.',
};

/** The create form, or with `id` the edit form of that subscription. */
export function renderEndpointForm(view, id) {
  const alert = alertBox();
  view.append(pageHeading(id ? 'Edit endpoint' : 'New endpoint'), alert);
  if (!id) {
    view.append(form(null, alert));
    return;
  }
  getSubscription(id).then(
    (sub) => view.append(form(sub, alert)),
    (error) => showError(alert, error),
  );
}

function form(sub, alert) {
  const url = h('input', { type: 'url', name: 'url', required: true, maxlength: '2048', autocomplete: 'off', value: sub?.url ?? '' });
  const description = h('input', { type: 'text', name: 'description', maxlength: '256', value: sub?.description ?? '' });
  const rate = h('input', { type: 'number', name: 'rateLimitPerSecond', min: '1', max: '1000', step: '1', inputmode: 'numeric', value: sub?.rateLimitPerSecond ?? '' });
  const chosen = new Set(sub?.events ?? ORDER_EVENTS);
  const orderBoxes = ORDER_EVENTS.map((name) => eventBox(name, chosen));
  const operationalBoxes = OPERATIONAL_EVENTS.map((name) => eventBox(name, chosen, OPERATIONAL_HINTS[name]));
  const submit = h('button', { type: 'submit' }, sub ? 'Save changes' : 'Create endpoint');
  const el = h(
    'form',
    { class: 'card' },
    field('URL', url, 'Where webhooks are POSTed: an https URL.'),
    h('fieldset', {}, h('legend', {}, 'Order events'), h('div', { class: 'checks' }, orderBoxes)),
    h('fieldset', {}, h('legend', {}, 'Operational events (opt-in)'), h('div', { class: 'checks' }, operationalBoxes)),
    field('Description (optional)', description),
    field('Rate limit, deliveries per second (optional)', rate, 'From 1 to 1000. Leave empty for no limit.'),
    alert,
    h('div', { class: 'actions' }, submit, h('a', { href: sub ? `#/endpoints/${sub.id}` : '#/endpoints', class: 'button button-quiet' }, 'Cancel')),
  );
  el.addEventListener('submit', (event) => {
    event.preventDefault();
    const values = {
      url: url.value.trim(),
      events: [...el.querySelectorAll('input[name=events]:checked')].map((box) => box.value),
      description: description.value.trim(),
      rate: rate.value === '' ? null : Number(rate.value),
    };
    busy(submit, alert, () => save(sub, values));
  });
  return el;
}

function eventBox(name, chosen, hint) {
  const box = h('input', { type: 'checkbox', name: 'events', value: name, checked: chosen.has(name), id: `event-${name}` });
  const hintEl = hint ? h('p', { class: 'hint', id: `event-${name}-hint` }, hint) : null;
  if (hintEl) box.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'check' }, box, h('label', { for: box.id }, words(name)), hintEl);
}

/** Creates or changes the subscription, then shows it. */
async function save(sub, values) {
  if (values.events.length === 0) throw new Error('Choose at least one event.');
  const saved = sub ? await updateSubscription(sub.id, patchBody(sub, values)) : await createSubscription(createBody(values));
  notice.carry(sub ? 'Changes saved.' : 'Endpoint created. Reveal its signing secret below to verify webhooks.');
  location.hash = `#/endpoints/${saved.id}`;
}

function createBody({ url, events, description, rate }) {
  const body = { url, events };
  if (description) body.description = description;
  if (rate !== null) body.rateLimitPerSecond = rate;
  return body;
}

/** Every field as shown; an emptied rate limit is `0` (removed), never `null`. */
function patchBody(sub, { url, events, description, rate }) {
  const body = { url, events, description };
  if (rate !== null) body.rateLimitPerSecond = rate;
  else if (sub.rateLimitPerSecond !== null) body.rateLimitPerSecond = 0;
  return body;
}
