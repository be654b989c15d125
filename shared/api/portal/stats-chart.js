// The last 24 hours of one endpoint (GET .../stats): deliveries by outcome per hour and
// p50/p99 latency, drawn as inline SVG at the width they get, with the same numbers in
// tables as their text alternative.
import { getStats } from './api.js';
import { alertBox, card, h, showError, svg } from './dom.js';
import { millis } from './format.js';

const HOURS = 24;
const HEIGHT = 200;
const PAD = { top: 12, right: 12, bottom: 28, left: 56 };
const hourFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

export function statsSection(id) {
  const alert = alertBox();
  const body = h('div', { class: 'stack' }, h('p', { class: 'loading' }, 'Loading statistics…'));
  getStats(id, HOURS).then(
    (stats) => body.replaceChildren(...statsView(stats)),
    (error) => {
      body.replaceChildren();
      if (error.status === 404) body.append(h('p', { class: 'empty' }, 'No statistics yet.'));
      else showError(alert, error);
    },
  );
  return card(`Last ${HOURS} hours`, alert, body);
}

function statsView({ buckets, totals }) {
  const table = totalsTable(totals);
  if (buckets.length === 0 || totals.succeeded + totals.failed === 0) return [h('p', { class: 'empty' }, `No deliveries in the last ${HOURS} hours.`), table];
  return [
    chart('Deliveries per hour by outcome', outcomeLegend(), (width) => outcomeSvg(buckets, width), `${totals.succeeded} succeeded and ${totals.failed} failed in all.`),
    chart('Latency per hour', latencyLegend(), (width) => latencySvg(buckets, width), `p50 ${millis(totals.p50LatencyMs)}, p99 ${millis(totals.p99LatencyMs)} over the whole period.`),
    table,
    bucketTable(buckets),
  ];
}

/** A figure whose SVG is drawn again whenever its width changes, so text stays readable. */
function chart(title, legend, draw, summary) {
  const box = h('div', { class: 'chart-box' });
  let drawn = 0;
  new ResizeObserver(() => {
    const width = Math.round(box.clientWidth);
    if (width === drawn || width === 0) return;
    drawn = width;
    const picture = draw(width);
    picture.setAttribute('aria-label', `${title}, last ${HOURS} hours: ${summary} The numbers are in the tables below.`);
    box.replaceChildren(picture);
  }).observe(box);
  return h('figure', { class: 'chart' }, h('figcaption', {}, title), legend, box);
}

function legendOf(entries) {
  return h('ul', { class: 'legend' }, entries.map(([cls, label]) => h('li', {}, h('span', { class: `swatch ${cls}` }), label)));
}

const outcomeLegend = () => legendOf([['swatch-succeeded', 'Succeeded'], ['swatch-failed', 'Failed']]);
const latencyLegend = () => legendOf([['swatch-p50', 'p50 (median)'], ['swatch-p99', 'p99 (dashed)']]);

/** The smallest of 2, 4, 6, 8, 10, 20 × a power of ten that holds `value`. */
function niceMax(value) {
  const magnitude = 10 ** Math.floor(Math.log10(Math.max(value, 1)));
  return [2, 4, 6, 8, 10, 20].map((m) => m * magnitude).find((candidate) => candidate >= value);
}

/** The plot's geometry for `count` hourly bands over `width` pixels, values 0..max. */
function frame(width, count, max) {
  const w = width - PAD.left - PAD.right;
  const h0 = HEIGHT - PAD.top - PAD.bottom;
  const band = w / count;
  return {
    band,
    x: (i) => PAD.left + i * band,
    y: (value) => PAD.top + h0 - (value / max) * h0,
  };
}

/** Grid lines with their values, and the hour under every few bands. */
function axes(geometry, buckets, max, unit) {
  const every = geometry.band * 3 >= 60 ? 3 : 6;
  const grid = [0, max / 2, max].map((value) => {
    const y = geometry.y(value);
    return [
      svg('line', { x1: PAD.left, x2: geometry.x(buckets.length), y1: y, y2: y, class: 'grid' }),
      svg('text', { x: PAD.left - 6, y: y + 4, class: 'tick tick-y' }, `${value.toLocaleString()}${unit}`),
    ];
  });
  const hours = buckets
    .map((bucket, i) => [bucket, i])
    .filter(([, i]) => i % every === 0)
    .map(([bucket, i]) => svg('text', { x: geometry.x(i) + geometry.band / 2, y: HEIGHT - 8, class: 'tick tick-x' }, hourFormat.format(new Date(bucket.start))));
  return [grid, hours];
}

function canvas(width, ...children) {
  return svg('svg', { viewBox: `0 0 ${width} ${HEIGHT}`, width, height: HEIGHT, role: 'img', class: 'chart-svg' }, ...children);
}

function outcomeSvg(buckets, width) {
  const max = niceMax(Math.max(...buckets.map((b) => b.succeeded + b.failed)));
  const g = frame(width, buckets.length, max);
  const barWidth = g.band * 0.7;
  const bars = buckets.map((b, i) => {
    const x = g.x(i) + (g.band - barWidth) / 2;
    const top = g.y(b.succeeded + b.failed);
    return [
      svg('rect', { x, y: g.y(b.succeeded), width: barWidth, height: g.y(0) - g.y(b.succeeded), class: 'bar-succeeded' }),
      svg('rect', { x, y: top, width: barWidth, height: g.y(b.succeeded) - top, class: 'bar-failed' }),
    ];
  });
  return canvas(width, axes(g, buckets, max, ''), bars);
}

function latencySvg(buckets, width) {
  const max = niceMax(Math.max(0, ...buckets.map((b) => b.p99LatencyMs ?? b.p50LatencyMs ?? 0)));
  const g = frame(width, buckets.length, max);
  const line = (key, cls) => {
    const points = buckets.map((b, i) => (b[key] === null || b[key] === undefined ? null : [g.x(i) + g.band / 2, g.y(b[key])]));
    return [
      svg('path', { d: pathOf(points), class: `line ${cls}` }),
      points.filter(Boolean).map(([x, y]) => svg('circle', { cx: x, cy: y, r: 3, class: `dot ${cls}` })),
    ];
  };
  return canvas(width, axes(g, buckets, max, ' ms'), line('p50LatencyMs', 'line-p50'), line('p99LatencyMs', 'line-p99'));
}

/** An SVG path through the points, broken where a point is missing (an hour without attempts). */
function pathOf(points) {
  return points
    .map((point, i) => (point ? `${points[i - 1] ? 'L' : 'M'}${point[0].toFixed(1)},${point[1].toFixed(1)}` : ''))
    .join(' ')
    .trim();
}

function totalsTable(totals) {
  return h(
    'table',
    { class: 'numbers' },
    h('caption', {}, `Totals, last ${HOURS} hours`),
    h('thead', {}, h('tr', {}, ['Succeeded', 'Failed', 'p50 latency', 'p99 latency'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, h('tr', {}, [totals.succeeded, totals.failed, millis(totals.p50LatencyMs), millis(totals.p99LatencyMs)].map((v) => h('td', {}, String(v))))),
  );
}

function bucketTable(buckets) {
  const rows = buckets.map((b) =>
    h(
      'tr',
      {},
      h('th', { scope: 'row' }, hourFormat.format(new Date(b.start))),
      [b.succeeded, b.failed, millis(b.p50LatencyMs), millis(b.p99LatencyMs)].map((v) => h('td', {}, String(v))),
    ),
  );
  return h(
    'details',
    { class: 'per-hour' },
    h('summary', {}, 'Numbers per hour'),
    // Scrolls sideways on a narrow screen rather than squeezing the columns.
    h(
      'div',
      { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Numbers per hour' },
      h(
        'table',
        { class: 'numbers' },
        h('caption', { class: 'visually-hidden' }, `Deliveries and latency per hour, last ${HOURS} hours`),
        h('thead', {}, h('tr', {}, ['Hour', 'Succeeded', 'Failed', 'p50 latency', 'p99 latency'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, rows),
      ),
    ),
  );
}
