// DOM helpers: build elements from data without innerHTML, show errors and notices,
// ask for confirmation in a modal <dialog>.
import { describeError } from './api.js';

const SVG_NS = 'http://www.w3.org/2000/svg';
// Properties set after the children exist (a <select>'s value needs its options).
const PROPERTIES = new Set(['value', 'checked']);

function build(el, props, children) {
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false || PROPERTIES.has(key)) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  for (const key of PROPERTIES) if (props[key] !== undefined) el[key] = props[key];
  return el;
}

/** An HTML element: h('a', {href: '#/x', class: 'link'}, 'text', child, ...). */
export function h(tag, props = {}, ...children) {
  return build(document.createElement(tag), props, children);
}

/** An SVG element, same call shape as h(). */
export function svg(tag, props = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), props, children);
}

let nextId = 0;
/** A fresh id for label/aria wiring. */
export function uid(prefix) {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

/** An empty alert region, to place near a form before anything can fail. */
export function alertBox() {
  return h('p', { class: 'alert', role: 'alert' });
}

/** Shows an API or network error in words in an alert region. */
export function showError(alert, error) {
  alert.textContent = describeError(error);
}

function clearError(alert) {
  alert.textContent = '';
}

/** A labelled input (or select/textarea built by the caller) with an optional hint. */
export function field(label, control, hint) {
  control.id ||= uid('field');
  const hintEl = hint ? h('p', { class: 'hint', id: uid('hint') }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control, hintEl);
}

/** A table cell labelled for the narrow layout, its content in one wrapper. */
export function cell(label, ...content) {
  return h('td', { 'data-label': label }, h('div', {}, ...content));
}

/** A <select> with [value, label] options. */
export function select(name, options, value) {
  return h('select', { name, value }, options.map(([v, label]) => h('option', { value: v }, label)));
}

/**
 * Runs an async action from a button: disabled while it runs (and given its focus back
 * after, which disabling takes away), errors shown in `alert`.
 */
export async function busy(button, alert, action) {
  const hadFocus = document.activeElement === button;
  button.disabled = true;
  clearError(alert);
  try {
    await action();
  } catch (error) {
    showError(alert, error);
  } finally {
    button.disabled = false;
    if (hadFocus && button.isConnected && document.activeElement === document.body) button.focus();
  }
}

/** The page's polite status line ("Endpoint created"), cleared when the page changes. */
export const notice = {
  fresh: false,
  show(text) {
    document.getElementById('notice').textContent = text;
    this.fresh = false;
  },
  /** Shows a notice that survives the navigation about to happen. */
  carry(text) {
    document.getElementById('notice').textContent = text;
    this.fresh = true;
  },
  /** Called on each navigation: clears a notice that was already seen on the last page. */
  turnPage() {
    if (!this.fresh) document.getElementById('notice').textContent = '';
    this.fresh = false;
  },
};

/** Asks in a modal dialog; resolves true when the person confirms. Cancel has the focus. */
export function confirmAction(message, confirmLabel) {
  const previous = document.activeElement;
  const textId = uid('confirm');
  const dialog = h(
    'dialog',
    { class: 'confirm', 'aria-labelledby': textId },
    h('p', { id: textId }, message),
    h(
      'form',
      { method: 'dialog', class: 'actions' },
      h('button', { value: 'cancel', class: 'button-quiet' }, 'Cancel'),
      h('button', { value: 'confirm', class: 'button-danger' }, confirmLabel),
    ),
  );
  document.body.append(dialog);
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      dialog.remove();
      previous?.focus?.();
      resolve(dialog.returnValue === 'confirm');
    });
  });
}

/** After `part` was redrawn: if the focused control went with it, the page's <h1> takes the focus. */
export function refocus(part) {
  if (document.activeElement === document.body) part.closest('.view')?.querySelector('h1')?.focus();
}

/** A card <section> titled by its <h2>. */
export function card(title, ...children) {
  const id = uid('section');
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id }, title), ...children);
}

/** The page title and its <h1>, which takes the focus after navigation. */
export function pageHeading(title) {
  document.title = `${title} · Webhooks portal`;
  return h('div', { class: 'page-heading' }, h('h1', { tabindex: '-1' }, title));
}
