// Browser test of the merchant portal against a running stack, as a merchant uses it:
//   STACK_URL=http://127.0.0.1:3000 API_KEY=whk_... SCREENSHOT_DIR=/tmp/shots node tests/portal/portal.test.mjs
// It starts its own merchant receivers (200, 500 "boom", an auth callback that allows),
// drives headless Chromium (CHROMIUM, default /usr/bin/chromium) through every page,
// runs axe-core on each (serious or critical violations fail), and saves screenshots.
// The stack must allow private http URLs and retry fast (WEBHOOKS_RETRY_SCHEDULE=1s,1s,1s,1s).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const STACK_URL = requiredEnv('STACK_URL').replace(/\/$/, '');
const API_KEY = requiredEnv('API_KEY');
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || path.join(os.tmpdir(), 'portal-screenshots');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const WAIT_MS = 30_000;
const POLL_MS = 500;
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 375, height: 800 };
const AXE_SOURCE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

function requiredEnv(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set. Usage: STACK_URL=http://127.0.0.1:3000 API_KEY=whk_... node tests/portal/portal.test.mjs`);
    process.exit(2);
  }
  return value;
}

// ---- merchant receivers --------------------------------------------------------------

/** An HTTP server on 127.0.0.1:<free port> that records each request and answers with `reply`. */
async function receiver(reply) {
  const received = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      const [status, type, text] = reply;
      res.writeHead(status, { 'content-type': type });
      res.end(text);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}/hook`, received, close: () => server.close() };
}

// ---- steps, polling, checks ----------------------------------------------------------

let stepNumber = 0;
async function step(name, action) {
  stepNumber += 1;
  const started = Date.now();
  process.stdout.write(`${String(stepNumber).padStart(2)}. ${name} … `);
  await action();
  console.log(`ok (${Date.now() - started} ms)`);
}

/** Calls `probe` until it returns something truthy, or fails after WAIT_MS saying what it waited for. */
async function until(what, probe, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/** axe-core on the page as it is; serious or critical violations fail. */
async function checkAccessibility(page, name) {
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(AXE_SOURCE);
  const { violations } = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const blocking = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const describe = (v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`;
  const minor = violations.filter((v) => !blocking.includes(v));
  if (minor.length) console.log(`\n    axe on ${name}, not blocking: ${minor.map(describe).join('; ')}`);
  assert.equal(blocking.length, 0, `axe on ${name}:\n  ${blocking.map(describe).join('\n  ')}`);
}

async function screenshot(page, name, fullPage = true) {
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`), fullPage });
}

// ---- page helpers --------------------------------------------------------------------

const heading = (page, name) => page.getByRole('heading', { level: 1, name, exact: true });

async function subscriptionIdOf(page) {
  return until('an endpoint page', async () => (await page.evaluate(() => location.hash)).match(/#\/endpoints\/(sub_[0-9a-f]+)/)?.[1]);
}

async function createEndpoint(page, url, description) {
  await page.getByRole('link', { name: 'Endpoints', exact: true }).click();
  await page.getByRole('link', { name: 'New endpoint' }).click();
  await heading(page, 'New endpoint').waitFor();
  await page.getByLabel('URL', { exact: true }).fill(url);
  await page.getByLabel('Description (optional)').fill(description);
  await page.getByRole('button', { name: 'Create endpoint' }).click();
  await heading(page, 'Endpoint').waitFor();
  await page.getByText('Endpoint created.').waitFor();
  return subscriptionIdOf(page);
}

/** Sends a test event from the endpoint's overview; returns its event id. */
async function sendTestEvent(page) {
  await page.getByRole('button', { name: 'Send test event' }).click();
  const result = page.locator('.result').filter({ hasText: 'queued' });
  await result.waitFor();
  return result.locator('code').innerText();
}

/** The delivery log's rows as {event, attempt, manual, outcome, detail, next}, after a Refresh. */
async function deliveryRows(page) {
  await page.getByRole('button', { name: 'Refresh' }).click();
  await page.getByRole('button', { name: 'Refresh', disabled: false }).waitFor();
  return page.locator('table.deliveries tbody tr').evaluateAll((rows) =>
    rows.map((row) => {
      const text = (label) => row.querySelector(`td[data-label="${label}"]`).textContent.trim();
      return {
        event: row.querySelector('.event-id').textContent,
        attempt: Number(text('Attempt').match(/#(\d+)/)[1]),
        manual: text('Attempt').includes('manual'),
        outcome: row.querySelector('td[data-label="Outcome"] .badge').textContent,
        detail: text('Outcome'),
        next: text('Next attempt'),
      };
    }),
  );
}

/** The Rust side may not have the stats route yet: then the chart says so. */
async function checkStats(page) {
  const answer = await page.evaluate(async (key) => {
    const id = location.hash.split('/')[2];
    const response = await fetch(`/v1/subscriptions/${id}/stats?hours=24`, { headers: { authorization: `Bearer ${key}` } });
    return response.status;
  }, API_KEY);
  if (answer === 404) {
    await page.getByText('No statistics yet.').waitFor();
    return 'no stats route yet: "No statistics yet." shown';
  }
  const totals = page.getByRole('table', { name: 'Totals, last 24 hours' });
  const succeeded = Number(await totals.locator('tbody td').first().innerText());
  assert.ok(succeeded >= 1, `the totals count the delivered test event (succeeded ${succeeded})`);
  assert.equal(await page.locator('figure.chart svg[role="img"]').count(), 2, 'two charts, outcome and latency');
  return `chart and totals table shown (${succeeded} succeeded)`;
}

// ---- the scenario --------------------------------------------------------------------

async function scenario(page, receivers) {
  const { ok, failing, auth } = receivers;
  let okId;
  let failingId;

  await step('the sign-in page loads under the CSP, and passes axe', async () => {
    await page.goto(`${STACK_URL}/`);
    await heading(page, 'Sign in').waitFor();
    await checkAccessibility(page, 'sign-in');
    await screenshot(page, 'sign-in');
  });

  await step('a wrong API key is refused in words', async () => {
    await page.getByLabel('API key').fill('whk_not_a_real_key');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'invalid API key' }).waitFor();
  });

  await step('signing in (Enter in the key field) keeps the key in sessionStorage only', async () => {
    await page.getByLabel('API key').fill(API_KEY);
    await page.getByLabel('API key').press('Enter');
    await heading(page, 'Endpoints').waitFor();
    const stored = await page.evaluate(() => ({ session: Object.values(sessionStorage), local: localStorage.length, href: location.href }));
    assert.deepEqual(stored.session, [API_KEY]);
    assert.equal(stored.local, 0, 'nothing in localStorage');
    assert.ok(!stored.href.includes(API_KEY), 'the key is not in the URL');
    assert.equal((await page.context().cookies()).length, 0, 'no cookies');
  });

  await step('create an endpoint to the 200 receiver (order events by default, endpoint_disabled opt-in)', async () => {
    await page.getByRole('link', { name: 'New endpoint' }).click();
    await heading(page, 'New endpoint').waitFor();
    assert.equal(await page.getByRole('checkbox', { checked: true }).count(), 6, 'the six order events are checked');
    assert.equal(await page.getByLabel('endpoint disabled').isChecked(), false, 'endpoint_disabled is opt-in');
    await checkAccessibility(page, 'new endpoint');
    await screenshot(page, 'endpoint-new');
    await page.getByLabel('URL', { exact: true }).fill('ftp://example.com/hooks');
    await page.getByRole('button', { name: 'Create endpoint' }).click();
    await page.getByRole('alert').filter({ hasText: 'url_not_allowed' }).waitFor();
    okId = await createEndpoint(page, ok.url, 'Portal test: answers 200');
  });

  await step('send a test event: it shows as delivered and the receiver got it', async () => {
    const eventId = await sendTestEvent(page);
    await page.getByRole('link', { name: 'See it in the delivery log' }).click();
    await heading(page, 'Deliveries').waitFor();
    await until(`event ${eventId} delivered in the log`, async () => (await deliveryRows(page)).some((r) => r.event === eventId && r.outcome === 'succeeded'));
    assert.ok(ok.received.some((r) => r.headers['webhook-id'] === eventId), `the 200 receiver got webhook-id ${eventId}`);
    await checkAccessibility(page, 'deliveries');
    await screenshot(page, 'deliveries');
  });

  await step('a network failure is shown in words', async () => {
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.route('**/test', (route) => route.abort());
    await page.getByRole('button', { name: 'Send test event' }).click();
    await page.getByRole('alert').filter({ hasText: 'Could not reach the API' }).waitFor();
    await page.unroute('**/test');
  });

  await step('reveal the secret, then rotate it: the shown secret changes', async () => {
    await page.getByRole('link', { name: 'Overview' }).click();
    await heading(page, 'Endpoint').waitFor();
    await page.getByRole('button', { name: 'Reveal secret' }).click();
    const secret = await page.getByLabel('Secret (hex)').inputValue();
    assert.match(secret, /^[0-9a-f]{64}$/);
    assert.match(await page.getByLabel('Standard Webhooks secret').inputValue(), /^whsec_[A-Za-z0-9+/]+=*$/);
    await page.getByRole('button', { name: 'Rotate secret' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Rotate secret' }).click();
    await page.getByText('New secret made.').waitFor();
    const rotated = await page.getByLabel('Secret (hex)').inputValue();
    assert.match(rotated, /^[0-9a-f]{64}$/);
    assert.notEqual(rotated, secret, 'rotation shows a new secret');
  });

  await step('the 24-hour statistics show (or say there are none yet)', async () => {
    console.log(`\n    ${await checkStats(page)}`);
    await checkAccessibility(page, 'endpoint overview');
    await screenshot(page, 'endpoint-detail');
  });

  await step('edit the endpoint: the new description shows', async () => {
    await page.getByRole('link', { name: 'Edit', exact: true }).click();
    await heading(page, 'Edit endpoint').waitFor();
    await page.getByLabel('Description (optional)').fill('Portal test: answers 200, edited');
    await page.getByLabel('Rate limit, deliveries per second (optional)').fill('50');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByText('Changes saved.').waitFor();
    await page.getByText('Portal test: answers 200, edited').waitFor();
    await page.getByText('50 deliveries a second').waitFor();
  });

  await step('an endpoint to the 500 receiver becomes failing, with its last error shown', async () => {
    failingId = await createEndpoint(page, failing.url, 'Portal test: answers 500');
    await sendTestEvent(page);
    await until('health "Failing" with last error HTTP 500', async () => {
      await page.reload();
      await heading(page, 'Endpoint').waitFor();
      const health = page.getByRole('region', { name: 'Health' });
      await health.locator('.badge').waitFor();
      const text = await health.innerText();
      return text.includes('Failing') && text.includes('HTTP 500');
    });
    assert.ok(failing.received.length >= 3, 'the 500 receiver was called at least 3 times');
    await page.getByRole('link', { name: 'Endpoints', exact: true }).click();
    const row = page.getByRole('row').filter({ hasText: failing.url });
    await row.getByText('Failing').waitFor();
    await row.getByText('last error: HTTP 500').waitFor();
    await checkAccessibility(page, 'endpoints');
    await page.setViewportSize(DESKTOP);
    await screenshot(page, 'endpoints-desktop', false);
  });

  await step('the endpoint list reads at phone width (375 px), and passes axe there', async () => {
    await page.setViewportSize(PHONE);
    await checkAccessibility(page, 'endpoints at 375 px');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no sideways scrolling at 375 px (overflow ${overflow} px)`);
    await screenshot(page, 'endpoints-phone');
    await page.setViewportSize(DESKTOP);
  });

  await step('resend a failed delivery: a new manual attempt appears', async () => {
    await page.goto(`${STACK_URL}/#/endpoints/${failingId}/deliveries`);
    await heading(page, 'Deliveries').waitFor();
    const last = await until('the automatic retries to end', async () => {
      const [newest] = await deliveryRows(page);
      return newest && newest.next === '—' && newest;
    });
    assert.equal(last.outcome, 'failed');
    assert.match(last.detail, /HTTP 500/);
    await page.getByRole('button', { name: `Resend event ${last.event}` }).click();
    await until(`attempt #${last.attempt + 1} of ${last.event}`, async () =>
      (await deliveryRows(page)).some((r) => r.event === last.event && r.attempt === last.attempt + 1 && r.manual),
    );
    await checkAccessibility(page, 'deliveries with failures');
    await screenshot(page, 'deliveries-failing');
    await page.setViewportSize(PHONE);
    await screenshot(page, 'deliveries-phone');
    await page.setViewportSize(DESKTOP);
  });

  await step('recover the last 24 hours: the count of queued deliveries shows', async () => {
    const result = page.getByRole('status').filter({ hasText: /queued again/ });
    await page.getByRole('button', { name: 'Recover failed deliveries' }).click();
    const text = await until('the recovery count', async () => (await result.count()) && result.innerText());
    const count = Number(text.match(/(\d+) failed/)[1]);
    assert.ok(count >= 1, `at least the failed test delivery is recovered (got "${text}")`);
  });

  await step('disable and enable an endpoint from the list', async () => {
    await page.getByRole('link', { name: 'Endpoints', exact: true }).click();
    const row = page.getByRole('row').filter({ hasText: failing.url });
    await row.getByRole('button', { name: 'Disable' }).click();
    await row.getByText('Paused').waitFor();
    await row.getByRole('button', { name: 'Enable' }).click();
    await row.getByText('Enabled', { exact: true }).waitFor();
  });

  await step('configure the auth callback (bearer token) and test it: allowed, with its reason', async () => {
    await page.getByRole('link', { name: 'Auth callback' }).click();
    await heading(page, 'Auth callback').waitFor();
    await page.getByLabel('Callback URL').fill(auth.url);
    await page.getByLabel('Authentication', { exact: true }).selectOption('bearer');
    await page.getByLabel('Token', { exact: true }).fill('portal-test-token');
    await page.getByRole('button', { name: 'Save auth callback' }).click();
    await page.getByText('Auth callback saved.').waitFor();
    await page.getByRole('definition').filter({ hasText: 'Bearer token' }).waitFor();
    assert.equal(await page.getByLabel('Token', { exact: true }).inputValue(), '', 'credentials are never prefilled');
    await page.getByLabel('User email').fill('alice@example.com');
    await page.getByLabel('Action', { exact: true }).fill('buy');
    await page.getByRole('button', { name: 'Test', exact: true }).click();
    const result = page.locator('.result');
    await result.getByText('Allowed', { exact: true }).waitFor();
    assert.match(await result.innerText(), /allowed \(the callback said yes\)/);
    const call = auth.received.at(-1);
    assert.deepEqual(JSON.parse(call.body), { email: 'alice@example.com', action: 'buy' });
    assert.equal(call.headers.authorization, 'Bearer portal-test-token');
    await checkAccessibility(page, 'auth callback');
    await screenshot(page, 'auth-callback');
  });

  await step('delete an endpoint: Escape cancels (focus back on the button), confirming deletes', async () => {
    await page.getByRole('link', { name: 'Endpoints', exact: true }).click();
    const row = page.getByRole('row').filter({ hasText: failing.url });
    const remove = row.getByRole('button', { name: 'Delete' });
    await remove.click();
    await page.getByRole('dialog').waitFor();
    await page.keyboard.press('Escape');
    // Not getByRole: a closed dialog is hidden, so it stops matching a task before its close
    // handler removes it and gives the focus back; a CSS locator waits for the removal.
    await page.locator('dialog').waitFor({ state: 'detached' });
    assert.ok(await remove.evaluate((button) => button === document.activeElement), 'the Delete button has the focus again');
    await remove.click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete endpoint' }).click();
    await page.getByText(`Deleted ${failing.url}.`).waitFor();
    await row.waitFor({ state: 'detached' });
  });

  await step('sign out forgets the key; a refused key returns to sign-in with a message', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await heading(page, 'Sign in').waitFor();
    await page.getByText('You are signed out.').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'sessionStorage is empty');
    await page.evaluate(() => sessionStorage.setItem('webhooksPortal.apiKey', 'whk_revoked'));
    await page.goto(`${STACK_URL}/#/endpoints/${okId}`);
    await heading(page, 'Sign in').waitFor();
    await page.getByRole('alert').filter({ hasText: 'Sign in again' }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'the refused key is forgotten');
  });
}

async function main() {
  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const receivers = {
    ok: await receiver([200, 'text/plain', 'ok']),
    failing: await receiver([500, 'text/plain', 'boom']),
    auth: await receiver([200, 'application/json', '{"allowed":true}']),
  };
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await (await browser.newContext({ viewport: DESKTOP })).newPage();
  page.setDefaultTimeout(WAIT_MS);
  const problems = [];
  page.on('pageerror', (error) => problems.push(`uncaught in the page: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy|Refused to/i.test(message.text())) problems.push(`CSP: ${message.text()}`);
  });
  try {
    console.log(`portal test against ${STACK_URL}, screenshots in ${SCREENSHOT_DIR}`);
    await scenario(page, receivers);
    assert.deepEqual(problems, [], 'no CSP violations or uncaught errors in the page');
    console.log(`${stepNumber} passed, 0 failed`);
  } catch (error) {
    console.log('FAILED');
    console.error(error.stack ?? error);
    if (problems.length) console.error(`page problems:\n  ${problems.join('\n  ')}`);
    await screenshot(page, 'failure').catch(() => {});
    console.error(`screenshot of the failure: ${path.join(SCREENSHOT_DIR, 'failure.png')}`);
    console.log(`${stepNumber - 1} passed, 1 failed`);
    process.exitCode = 1;
  } finally {
    await browser.close();
    for (const r of Object.values(receivers)) r.close();
  }
}

await main();
