// The client of the public /v1 API: the merchant's API key (kept in sessionStorage only),
// JSON requests, and API or network errors as ApiError with a message in words.

const KEY_NAME = 'webhooksPortal.apiKey';
const PAGE_LIMIT = 100;
const MAX_PAGES = 20;

export const session = {
  key: () => sessionStorage.getItem(KEY_NAME),
  signIn: (key) => sessionStorage.setItem(KEY_NAME, key),
  signOut: () => sessionStorage.removeItem(KEY_NAME),
};

/** An error answer of the API (`{"error":{"code","message"}}`), or status 0 for a network failure. */
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let unauthorized = () => {};
/** Who to call when the session's key is refused (401): the portal returns to sign-in. */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

/** A sentence for a person, from any error a request or the page can throw. */
export function describeError(error) {
  if (!(error instanceof ApiError)) return error.message;
  if (error.status === 0) return error.message;
  return `${error.message} (${error.code}, HTTP ${error.status})`;
}

async function readBody(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { text };
  }
}

function errorFrom(response, body) {
  const code = body?.error?.code ?? 'http_error';
  let message = body?.error?.message ?? `The API answered HTTP ${response.status}.`;
  const retryAfter = response.headers.get('retry-after');
  if (response.status === 429 && retryAfter) message += `; try again in ${retryAfter} s`;
  return new ApiError(response.status, code, message);
}

/** The query without empty values. */
function clean(query) {
  return Object.fromEntries(Object.entries(query).filter(([, v]) => v !== undefined && v !== null && v !== ''));
}

/**
 * One request to the API. `key` defaults to the session's key; a 401 with the session's
 * key ends the session.
 */
async function request(method, path, { body, query, key = session.key() } = {}) {
  const url = query ? `${path}?${new URLSearchParams(clean(query))}` : path;
  const headers = { authorization: `Bearer ${key}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch {
    throw new ApiError(0, 'network_error', 'Could not reach the API: check the connection and try again.');
  }
  const parsed = await readBody(response);
  if (response.ok) return parsed;
  const error = errorFrom(response, parsed);
  if (response.status === 401 && key === session.key()) {
    session.signOut();
    unauthorized(error.message);
  }
  throw error;
}

const sub = (id) => `/v1/subscriptions/${encodeURIComponent(id)}`;

/** Checks a key before it is kept: one small list request with it. */
export const checkKey = (key) => request('GET', '/v1/subscriptions', { query: { limit: 1 }, key });

/** Every subscription of the merchant, page after page. */
export async function listSubscriptions() {
  const items = [];
  let cursor;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const answer = await request('GET', '/v1/subscriptions', { query: { limit: PAGE_LIMIT, cursor } });
    items.push(...answer.items);
    cursor = answer.nextCursor;
    if (!cursor) break;
  }
  return items;
}

export const getSubscription = (id) => request('GET', sub(id));
export const createSubscription = (body) => request('POST', '/v1/subscriptions', { body });
export const updateSubscription = (id, body) => request('PATCH', sub(id), { body });
export const deleteSubscription = (id) => request('DELETE', sub(id));
export const revealSecret = (id) => request('GET', `${sub(id)}/secret`);
export const rotateSecret = (id) => request('POST', `${sub(id)}/secret/rotate`);
export const sendTestEvent = (id, body) => request('POST', `${sub(id)}/test`, { body });
export const listDeliveries = (id, cursor) =>
  request('GET', `${sub(id)}/deliveries`, { query: { limit: PAGE_LIMIT, cursor } });
export const retryDelivery = (id, eventId) =>
  request('POST', `${sub(id)}/deliveries/${encodeURIComponent(eventId)}/retry`);
export const recoverDeliveries = (id, body) => request('POST', `${sub(id)}/recover`, { body });
export const getStats = (id, hours) => request('GET', `${sub(id)}/stats`, { query: { hours } });

export const getAuthCallback = () => request('GET', '/v1/auth-callback');
export const putAuthCallback = (body) => request('PUT', '/v1/auth-callback', { body });
export const deleteAuthCallback = () => request('DELETE', '/v1/auth-callback');
export const testAuthCallback = (body) => request('POST', '/v1/auth-callback/test', { body });
