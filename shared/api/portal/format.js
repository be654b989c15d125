// Words for what the API returns: times, event names, endpoint health, delivery errors.
import { h } from './dom.js';

/** The six order events every subscription gets by default. */
export const ORDER_EVENTS = [
  'payment_received',
  'payment_rejected',
  'payment_expired',
  'crypto_tx_sent',
  'crypto_delivered',
  'crypto_tx_failed',
];
/** Operational events a merchant opts into; not among the defaults. */
export const OPERATIONAL_EVENTS = ['endpoint_disabled'];

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

/** A <time> element in the reader's time zone, or a dash when there is no time. */
export function time(iso) {
  if (!iso) return '—';
  return h('time', { datetime: iso }, dateTime.format(new Date(iso)));
}

/** `payment_received` → `payment received`. */
export function words(name) {
  return name.replaceAll('_', ' ');
}

const HEALTH_LABELS = { healthy: 'Healthy', failing: 'Failing', disabled: 'Disabled' };

/** The health badge: a word in a coloured pill (the word carries the meaning, not the colour). */
export function healthBadge(health) {
  const status = health?.status ?? 'healthy';
  return h('span', { class: `badge badge-${status}` }, HEALTH_LABELS[status] ?? status);
}

/**
 * The last failure, as the API gives it: an HTTP status ("503"), an error kind
 * ("timeout"), or an object with a status and a reason.
 */
export function lastErrorText(lastError) {
  if (lastError === undefined || lastError === null) return '';
  if (typeof lastError === 'object') {
    const status = lastError.status ?? lastError.statusCode;
    const reason = lastError.reason ?? lastError.error;
    return [status ? `HTTP ${status}` : '', reason ? errorText(reason) : ''].filter(Boolean).join(', ');
  }
  return /^\d{3}$/.test(lastError) ? `HTTP ${lastError}` : errorText(lastError);
}

const ERROR_WORDS = {
  http_status: 'HTTP error status',
  timeout: 'timed out',
  connect_error: 'could not connect',
  request_error: 'broken exchange',
  blocked_url: 'URL not allowed',
};

/** A delivery attempt's error kind in words. */
export function errorText(kind) {
  return ERROR_WORDS[kind] ?? words(kind);
}

/** `1234` → `1,234 ms`; a dash for none. */
export function millis(ms) {
  return ms === null || ms === undefined ? '—' : `${ms.toLocaleString()} ms`;
}
