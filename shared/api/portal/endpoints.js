// The endpoints page: every subscription with its health and state, and the actions
// that apply to one (enable or disable, edit, delete).
import { deleteSubscription, listSubscriptions, updateSubscription } from './api.js';
import { alertBox, busy, cell, confirmAction, h, notice, pageHeading, refocus, showError } from './dom.js';
import { healthBadge, lastErrorText, time } from './format.js';

export function renderEndpointList(view) {
  const alert = alertBox();
  const body = h('div', { class: 'loading' }, 'Loading endpoints…');
  view.append(
    h('div', { class: 'heading-row' }, pageHeading('Endpoints'), h('a', { href: '#/endpoints/new', class: 'button' }, 'New endpoint')),
    alert,
    body,
  );
  load(body, alert);
}

async function load(body, alert) {
  try {
    const items = await listSubscriptions();
    body.replaceChildren(items.length ? table(items, () => load(body, alert), alert) : empty());
    refocus(body);
  } catch (error) {
    body.replaceChildren();
    showError(alert, error);
  }
}

function empty() {
  return h('p', { class: 'empty' }, 'No endpoints yet. Add one to receive webhooks when your orders change.');
}

function table(items, reload, alert) {
  return h(
    'table',
    { class: 'responsive' },
    h('caption', { class: 'visually-hidden' }, 'Your webhook endpoints'),
    h('thead', {}, h('tr', {}, ['Endpoint', 'Health', 'State', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, items.map((item) => row(item, reload, alert))),
  );
}

function row(sub, reload, alert) {
  return h(
    'tr',
    {},
    cell(
      'Endpoint',
      h('a', { href: `#/endpoints/${sub.id}`, class: 'url' }, sub.url),
      sub.description ? h('p', { class: 'muted' }, sub.description) : null,
      h('p', { class: 'muted' }, `${sub.events.length} event${sub.events.length === 1 ? '' : 's'}`),
    ),
    cell('Health', healthCell(sub.health)),
    cell('State', sub.enabled ? 'Enabled' : 'Paused'),
    cell('Actions', actions(sub, reload, alert)),
  );
}

/** The badge, and for a failing or disabled endpoint since when and why. */
function healthCell(health) {
  const lastError = lastErrorText(health.lastError);
  return h(
    'div',
    { class: 'health' },
    healthBadge(health),
    health.since ? h('span', { class: 'muted' }, 'since ', time(health.since)) : null,
    lastError ? h('span', { class: 'muted' }, `last error: ${lastError}`) : null,
  );
}

function actions(sub, reload, alert) {
  const toggle = h('button', { type: 'button', class: 'button-quiet' }, sub.enabled ? 'Disable' : 'Enable');
  toggle.append(h('span', { class: 'visually-hidden' }, ` ${sub.url}`));
  toggle.addEventListener('click', () =>
    busy(toggle, alert, async () => {
      await updateSubscription(sub.id, { enabled: !sub.enabled });
      notice.show(`${sub.url} is ${sub.enabled ? 'paused' : 'enabled'}.`);
      await reload();
    }),
  );
  const remove = h('button', { type: 'button', class: 'button-danger' }, 'Delete', h('span', { class: 'visually-hidden' }, ` ${sub.url}`));
  remove.addEventListener('click', () =>
    busy(remove, alert, async () => {
      if (!(await confirmDelete(sub))) return;
      notice.show(`Deleted ${sub.url}.`);
      await reload();
    }),
  );
  const edit = h('a', { href: `#/endpoints/${sub.id}/edit`, class: 'button button-quiet' }, 'Edit', h('span', { class: 'visually-hidden' }, ` ${sub.url}`));
  return h('div', { class: 'actions' }, edit, toggle, remove);
}

/** Asks, then deletes; true when it is gone. */
export async function confirmDelete(sub) {
  const sure = await confirmAction(`Delete the endpoint ${sub.url}? No more webhooks go to it, and this cannot be undone.`, 'Delete endpoint');
  if (sure) await deleteSubscription(sub.id);
  return sure;
}
