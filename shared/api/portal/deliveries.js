// One endpoint's delivery log: attempts newest first, page by page, filtered here by
// outcome, event and time; resending one delivery; recovering the failed ones of a window.
import { getSubscription, listDeliveries, recoverDeliveries, retryDelivery } from './api.js';
import { alertBox, busy, card, cell, field, h, notice, select, showError } from './dom.js';
import { endpointFrame } from './endpoint-detail.js';
import { OPERATIONAL_EVENTS, ORDER_EVENTS, errorText, millis, time, words } from './format.js';

const OUTCOMES = [['', 'Any outcome'], ['succeeded', 'Succeeded'], ['failed', 'Failed'], ['skipped', 'Skipped']];
const WINDOWS = [['', 'Any time'], ['3600', 'Last hour'], ['86400', 'Last 24 hours'], ['604800', 'Last 7 days']];
const EVENTS = [['', 'Any event'], ...[...ORDER_EVENTS, ...OPERATIONAL_EVENTS].map((name) => [name, words(name)])];
const LONG_EXCERPT = 60;
const RESEND_POLLS = 10;
const POLL_MS = 1000;
const MAX_RECOVER_ROUNDS = 20;
const DAY_MS = 86_400_000;

export function renderDeliveries(view, id) {
  const subtitle = endpointFrame(view, id, 'Deliveries', 'Deliveries');
  const alert = alertBox();
  view.append(alert);
  getSubscription(id).then(
    (sub) => {
      subtitle.textContent = sub.url;
      view.append(logSection(sub), recoverSection(sub));
    },
    (error) => showError(alert, error),
  );
}

function logSection(sub) {
  const state = { items: [], cursor: null };
  const alert = alertBox();
  const outcome = select('outcome', OUTCOMES, '');
  const eventName = select('eventName', EVENTS, '');
  const period = select('period', WINDOWS, '');
  const filters = h('form', { class: 'filters', 'aria-label': 'Filter attempts' }, field('Outcome', outcome), field('Event', eventName), field('Time', period));
  const summary = h('p', { class: 'muted', role: 'status' });
  const tableBox = h('div', {}, h('p', { class: 'loading' }, 'Loading attempts…'));
  const refresh = h('button', { type: 'button', class: 'button-quiet' }, 'Refresh');
  const older = h('button', { type: 'button', class: 'button-quiet', hidden: true }, 'Load older attempts');

  const show = () => {
    const shown = state.items.filter(matches(outcome.value, eventName.value, period.value));
    tableBox.replaceChildren(shown.length ? table(shown, latestAttempts(state.items), resend) : h('p', { class: 'empty' }, 'No attempts to show.'));
    summary.textContent = `Showing ${shown.length} of the ${state.items.length} latest attempts${state.cursor ? ' (older ones not loaded)' : ''}.`;
    older.hidden = !state.cursor;
  };
  const load = async (cursor) => {
    const page = await listDeliveries(sub.id, cursor);
    state.items = cursor ? [...state.items, ...page.items] : page.items;
    state.cursor = page.nextCursor;
    show();
  };
  const resend = (attempt, button) =>
    busy(button, alert, async () => {
      await retryDelivery(sub.id, attempt.eventId);
      notice.show(`Resend of event ${attempt.eventId} queued.`);
      await waitForAttempt(load, state, attempt);
    });

  filters.addEventListener('change', show);
  filters.addEventListener('submit', (event) => event.preventDefault());
  refresh.addEventListener('click', () => busy(refresh, alert, () => load(null)));
  older.addEventListener('click', () => busy(older, alert, () => load(state.cursor)));
  load(null).catch((error) => {
    tableBox.replaceChildren();
    showError(alert, error);
  });
  return card('Delivery log', filters, h('div', { class: 'actions' }, refresh), alert, summary, tableBox, h('div', { class: 'actions' }, older));
}

/** A filter over attempts: each empty choice lets everything through. */
function matches(outcome, eventName, windowSeconds) {
  const since = windowSeconds ? Date.now() - Number(windowSeconds) * 1000 : 0;
  return (a) =>
    (!outcome || a.outcome === outcome) && (!eventName || a.eventName === eventName) && Date.parse(a.attemptedAt) >= since;
}

/** The newest attempt of each event (the list is newest first): these get a Resend button. */
function latestAttempts(items) {
  const newest = new Map();
  for (const a of items) if (!newest.has(a.eventId)) newest.set(a.eventId, a);
  return new Set(newest.values());
}

/** Reloads the log each second until the resent attempt shows, for ten seconds at most. */
async function waitForAttempt(load, state, attempt) {
  for (let poll = 0; poll < RESEND_POLLS; poll += 1) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    await load(null);
    if (state.items.some((a) => a.eventId === attempt.eventId && a.attempt > attempt.attempt)) return;
  }
}

function table(items, latest, resend) {
  const headers = ['When', 'Event', 'Attempt', 'Outcome', 'Latency', 'Response', 'Next attempt', 'Actions'];
  return h(
    'table',
    { class: 'responsive deliveries' },
    h('caption', { class: 'visually-hidden' }, 'Delivery attempts, newest first'),
    h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, items.map((a) => row(a, latest.has(a) ? resend : null))),
  );
}

function row(a, resend) {
  return h(
    'tr',
    {},
    cell('When', time(a.attemptedAt)),
    cell('Event', words(a.eventName), h('br'), h('code', { class: 'event-id' }, a.eventId)),
    cell('Attempt', `#${a.attempt}`, a.manual ? h('span', { class: 'tag' }, 'manual') : null),
    cell('Outcome', h('span', { class: `badge badge-${a.outcome}` }, words(a.outcome)), outcomeDetail(a)),
    cell('Latency', millis(a.latencyMs)),
    cell('Response', excerpt(a.responseExcerpt)),
    cell('Next attempt', time(a.nextAttemptAt)),
    cell('Actions', resend ? resendButton(a, resend) : '—'),
  );
}

/** The answer's HTTP status, or why there was none. */
function outcomeDetail({ statusCode, error }) {
  const parts = [statusCode ? `HTTP ${statusCode}` : '', error && error !== 'http_status' ? errorText(error) : ''].filter(Boolean);
  return parts.length ? h('span', { class: 'muted block' }, parts.join(', ')) : null;
}

function excerpt(text) {
  if (!text) return '—';
  if (text.length <= LONG_EXCERPT) return h('code', { class: 'excerpt' }, text);
  return h('details', {}, h('summary', {}, `${text.length} characters`), h('pre', { class: 'excerpt' }, text));
}

function resendButton(attempt, resend) {
  const button = h('button', { type: 'button', class: 'button-quiet' }, 'Resend', h('span', { class: 'visually-hidden' }, ` event ${attempt.eventId}`));
  button.addEventListener('click', () => resend(attempt, button));
  return button;
}

/** A datetime-local value (the reader's time zone, to the minute) for a Date. */
function localInputValue(date) {
  return new Date(date.getTime() - date.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
}

function recoverSection(sub) {
  const alert = alertBox();
  const since = h('input', { type: 'datetime-local', name: 'since', required: true, value: localInputValue(new Date(Date.now() - DAY_MS)) });
  const until = h('input', { type: 'datetime-local', name: 'until' });
  const submit = h('button', { type: 'submit' }, 'Recover failed deliveries');
  const result = h('p', { role: 'status', class: 'result' });
  const form = h(
    'form',
    {},
    h('div', { class: 'row' }, field('From', since, 'Included, your local time.'), field('Until (optional)', until, 'Excluded; empty means now. At most 14 days after From.')),
    alert,
    h('div', { class: 'actions' }, submit),
    result,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    busy(submit, alert, async () => {
      result.textContent = '';
      const count = await recover(sub.id, new Date(since.value).toISOString(), until.value ? new Date(until.value).toISOString() : undefined);
      result.textContent = `${count} failed ${count === 1 ? 'delivery' : 'deliveries'} queued again.`;
    });
  });
  return card(
    'Recover failed deliveries',
    h('p', {}, 'Sends again, oldest first, every delivery whose attempts all failed and whose first attempt falls in the window. A delivery already queued by an earlier recovery is not sent twice.'),
    form,
  );
}

/** Recovers the window, going on from `nextSince` while the API says there is more. */
async function recover(id, since, until) {
  let total = 0;
  let from = since;
  for (let round = 0; round < MAX_RECOVER_ROUNDS && from; round += 1) {
    const answer = await recoverDeliveries(id, until ? { since: from, until } : { since: from });
    total += answer.count;
    from = answer.nextSince;
  }
  return total;
}
